# Cross-compiles Postwatch for armhf (Debian triplet arm-linux-gnueabihf) with Debian's cross compiler
# (g++-arm-linux-gnueabihf) and the target's -dev packages installed through multiarch
# (dpkg --add-architecture armhf; they land in /usr/lib/arm-linux-gnueabihf). firmware-config/cross-build
# installs both and uses this file:
#   cmake -S . -B build-cross/armhf -G Ninja -DCMAKE_TOOLCHAIN_FILE=firmware-config/toolchains/arm-linux-gnueabihf.cmake \
#         -DPOSTWATCH_BUILD_AGGREGATOR=OFF -DPOSTWATCH_BUILD_TESTS=OFF -DPOSTWATCH_BUILD_TOOLS=OFF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(POSTWATCH_TARGET_TRIPLET arm-linux-gnueabihf)
set(POSTWATCH_TARGET_DEB_ARCH armhf)

set(CMAKE_C_COMPILER ${POSTWATCH_TARGET_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${POSTWATCH_TARGET_TRIPLET}-g++)
# GCC notes that the ABI for passing some structures changed in GCC 7.1; all code here is built
# with one compiler, so the note is noise.
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")
set(CMAKE_STRIP ${POSTWATCH_TARGET_TRIPLET}-strip CACHE FILEPATH "strip for the target")

# Multiarch: the target's libraries and CMake package files are in /usr/lib/<triplet>,
# headers in /usr/include and /usr/include/<triplet>. CMake searches lib/<triplet>
# because of CMAKE_LIBRARY_ARCHITECTURE; the cross compiler's own C library lives
# under /usr/<triplet>. Host programs (flatc) come from the build machine.
set(CMAKE_LIBRARY_ARCHITECTURE ${POSTWATCH_TARGET_TRIPLET})
set(CMAKE_FIND_ROOT_PATH /usr/${POSTWATCH_TARGET_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${POSTWATCH_TARGET_TRIPLET}/pkgconfig:/usr/share/pkgconfig)

# Run target programs through qemu-user when it is installed (apt: qemu-user). With multiarch
# libc6:<arch> installed, qemu finds the target's loader in /lib and needs no -L; the cross
# toolchain's loader (-L /usr/<triplet>) is a different glibc build than the multiarch libc.so.6
# and hangs threaded programs.
find_program(POSTWATCH_QEMU qemu-arm)
if(POSTWATCH_QEMU)
  if(EXISTS /usr/lib/${POSTWATCH_TARGET_TRIPLET}/libc.so.6)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${POSTWATCH_QEMU})
  else()
    set(CMAKE_CROSSCOMPILING_EMULATOR ${POSTWATCH_QEMU} -L /usr/${POSTWATCH_TARGET_TRIPLET})
  endif()
endif()

# cpack -G DEB names the package for the target architecture.
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${POSTWATCH_TARGET_DEB_ARCH} CACHE STRING "Debian architecture")
