kill $PRESENCED_PID   # SIGTERM: finish in-flight requests, close the store, exit (Ctrl-C in the foreground does the same)
wait $PRESENCED_PID   # returns once it has exited; a second signal would end it at once
