T=http://${PRESENCED_ADDR:-127.0.0.1:8080}/_test   # no token needed under /_test/
curl -s --fail-with-body -X POST $G/users/$U/presence/setPresence -H "Authorization: Bearer $APP" -H "$J" \
  -d "{\"sessionId\":\"$A\",\"availability\":\"Available\",\"activity\":\"Available\",\"expirationDuration\":\"PT1H\"}"
curl -s --fail-with-body -X POST $T/clock/advance -d '{"by":"PT5M"}'; echo
curl -s --fail-with-body $G/users/$U/presence -H "Authorization: Bearer $APP"; echo   # Available/AvailableInactive
curl -s --fail-with-body -X POST $T/clock/advance -d '{"by":"PT55M"}'; echo
curl -s --fail-with-body $G/users/$U/presence -H "Authorization: Bearer $APP"; echo   # Offline/Offline

# What the tenant of `presenced token` holds: each user's stored state and next change.
curl -s --fail-with-body $T/tenants/84bd8158-6d4d-4958-8b9f-9d6445542f95/state; echo
