# Cross-compiles Postwatch for arm64 (Debian triplet aarch64-linux-gnu) with Debian's cross compiler
# (g++-aarch64-linux-gnu) and the target's -dev packages installed through multiarch
# (dpkg --add-architecture arm64; they land in /usr/lib/aarch64-linux-gnu). firmware-config/cross-build
# installs both and uses this file:
#   cmake -S . -B build-cross/arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=firmware-config/toolchains/aarch64-linux-gnu.cmake \
#         -DPOSTWATCH_BUILD_AGGREGATOR=OFF -DPOSTWATCH_BUILD_TESTS=OFF -DPOSTWATCH_BUILD_TOOLS=OFF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(POSTWATCH_TARGET_TRIPLET aarch64-linux-gnu)
set(POSTWATCH_TARGET_DEB_ARCH arm64)

set(CMAKE_C_COMPILER ${POSTWATCH_TARGET_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${POSTWATCH_TARGET_TRIPLET}-g++)
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
find_program(POSTWATCH_QEMU qemu-aarch64)
if(POSTWATCH_QEMU)
  if(EXISTS /usr/lib/${POSTWATCH_TARGET_TRIPLET}/libc.so.6)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${POSTWATCH_QEMU})
  else()
    set(CMAKE_CROSSCOMPILING_EMULATOR ${POSTWATCH_QEMU} -L /usr/${POSTWATCH_TARGET_TRIPLET})
  endif()
endif()

# cpack -G DEB names the package for the target architecture.
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${POSTWATCH_TARGET_DEB_ARCH} CACHE STRING "Debian architecture")
