go build -o presenced ./cmd/presenced      # (go install …/cmd/presenced@latest puts it on PATH: drop the ./ below)
./presenced --test-hooks --store memory &  # in the background; --store memory keeps nothing after it stops
PRESENCED_PID=$!                           # the server's own process id, for stopping it later
until curl -sf http://${PRESENCED_ADDR:-127.0.0.1:8080}/readyz >/dev/null; do kill -0 $PRESENCED_PID || break; sleep 0.2; done
