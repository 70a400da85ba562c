#!/usr/bin/env bash
# Installs what is missing, builds, and runs crmgate on 127.0.0.1:8080 in front
# of the bundled CRM simulator (127.0.0.1:8081), in the foreground. Ctrl-C stops both.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/deploy/install-deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$(nproc 2>/dev/null || echo 2)" --target crmgate crmsim

cd "$root" # the embedded default configuration reads rules/ from here
sim_pid= gw_pid=
stop() {
    trap - INT TERM EXIT
    [ -n "$gw_pid" ] && kill -TERM "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
    [ -n "$sim_pid" ] && kill -TERM "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
    echo "quickstart: stopped"
}
trap stop INT TERM EXIT

"$root/build/crmsim" --listen 127.0.0.1:8081 &
sim_pid=$!
"$root/build/crmgate" -c "$root/conf/crmgate.yaml" &
gw_pid=$!

for _ in $(seq 100); do
    curl -fs http://127.0.0.1:9901/-/healthz >/dev/null 2>&1 && break
    kill -0 "$gw_pid" 2>/dev/null || { echo "quickstart: crmgate did not start (see above)" >&2; exit 1; }
    sleep 0.1
done

base=http://127.0.0.1:8080/crmRestApi/resources/11.13.18.05/interactions
cat <<MSG

crmgate is running on http://127.0.0.1:8080 in front of the CRM simulator.
Try these (the first is Oracle's documented example and answers 201; the second
carries a read-only field, an unknown object type and a too-long channel code, and answers 400):

  curl -i -X POST $base -H 'Content-Type: application/json' -d '{"ChannelTypeCd":"ORA_SVC_WEB"}'

  curl -i -X POST $base -H 'Content-Type: application/json' -H 'REST-Framework-Version: 4' -d '{"ChannelTypeCd":"ORA_SVC_WEB_CHANNEL_CODE_TOO_LONG","CreatedBy":"me","interactionReferences":[{"ObjectTypeCd":"MOO_OPTYX","ObjectId":1}]}'

Health: curl http://127.0.0.1:9901/-/healthz    Stop: Ctrl-C
MSG
wait "$gw_pid"
