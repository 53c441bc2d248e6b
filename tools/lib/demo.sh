# shellcheck shell=bash
# What tools/run-demo and tools/run-cluster-demo share (sourced, not run): messages, the
# simulator's options, the build, free ports, and waiting for a child to be ready. The script
# sets PROG (its name in messages), ROOT, BUILD_DIR, LOG_DIR and SIM_ARGS before calling these.

say() { echo "$PROG: $*"; }
warn() { echo "$PROG: $*" >&2; }
die() {
  warn "$@"
  exit 1
}

# Whether the simulator's options include `flag` (as "--flag value" or "--flag=value").
sim_has_option() {
  local a
  for a in ${SIM_ARGS[@]+"${SIM_ARGS[@]}"}; do [[ $a == "$1" || $a == "$1="* ]] && return 0; done
  return 1
}

# The value of a simulator option, else `default`.
sim_option() {
  local i
  for ((i = 0; i < ${#SIM_ARGS[@]}; i++)); do
    case "${SIM_ARGS[i]}" in
    "$1")
      echo "${SIM_ARGS[i + 1]:-}"
      return
      ;;
    "$1"=*)
      echo "${SIM_ARGS[i]#"$1"=}"
      return
      ;;
    esac
  done
  echo "$2"
}

# tools/bootstrap, then the aggregator and the simulator in BUILD_DIR (Ninja, RelWithDebInfo);
# DEMO_NO_BUILD=1 runs what is built there already.
build() {
  if [ "${DEMO_NO_BUILD:-}" = 1 ]; then
    local p
    for p in aggregator/postwatch-aggregator tools/simulator/postwatch-sim; do
      [ -x "$BUILD_DIR/$p" ] || die "DEMO_NO_BUILD=1 but $BUILD_DIR/$p is not built"
    done
  else
    "$ROOT/tools/bootstrap"
    local cache="$BUILD_DIR/CMakeCache.txt"
    if [ ! -f "$cache" ]; then
      say "configuring $BUILD_DIR"
      cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
    elif ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$cache"; then
      die "$BUILD_DIR was configured with another generator than Ninja; use another BUILD_DIR=..."
    fi
    say "building postwatch-aggregator, postwatch-sim, postwatch-agent and postwatch-fleet in $BUILD_DIR"
    cmake --build "$BUILD_DIR" --target postwatch-aggregator postwatch-sim postwatch-agent postwatch-fleet
  fi
  BUILD_DIR=$(cd "$BUILD_DIR" && pwd) # the children run elsewhere
}

port_in_use() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Sets variable `var` to the preferred port if free, else the next free one above it, else a
# random one; never one handed out before (nothing listens on those yet).
TAKEN=" "
pick_port() {
  local var=$1 preferred=$2 p i
  for ((i = 0; i < 70; i++)); do
    if ((i < 20)); then p=$((preferred + i)); else p=$((20000 + RANDOM % 40000)); fi
    [[ $TAKEN == *" $p "* ]] && continue
    port_in_use "$p" && continue
    TAKEN+="$p "
    printf -v "$var" %s "$p"
    return 0
  done
  die "no free port for $var"
}

# Polls `check` every 0.1 s until it succeeds, the child `pid` dies or `secs` pass.
wait_for() {
  local what=$1 pid=$2 secs=$3 log=$4
  shift 4
  local deadline=$((SECONDS + secs))
  until "$@"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      warn "$what exited during start-up; last lines of $log:"
      tail -n 20 "$log" >&2
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      warn "$what not ready after ${secs} s; last lines of $log:"
      tail -n 20 "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
}

http_ok() { curl -fs -o /dev/null --max-time 1 "$1"; }
sim_connected() { grep -q "agents connected" "$LOG_DIR/sim.log" 2>/dev/null; }
