# Sourced by demo.sh, test.sh and bench.sh: start dockerd when we are root, it is installed and no
# daemon answers (no systemd here); stop it again on exit if we started it.
started_dockerd=
if [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null && ! docker info >/dev/null 2>&1; then
  dockerd >/tmp/crecipe-dockerd.log 2>&1 &
  started_dockerd=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /tmp/crecipe-dockerd.log:" >&2; tail -5 /tmp/crecipe-dockerd.log >&2; }
fi
stop_dockerd() {
  if [ -n "$started_dockerd" ]; then
    kill "$started_dockerd" 2>/dev/null || true
    wait "$started_dockerd" 2>/dev/null || true
  fi
}
trap stop_dockerd EXIT
