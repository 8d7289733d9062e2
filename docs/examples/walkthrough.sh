U=fa8bf3dc-eca7-46b7-bad1-db199b62afc3          # any GUID is a user
A=22553876-f5ab-4529-bffb-cfe50aa89f87          # the app id `presenced token` uses by default
APP=$(./presenced token)                        # an application token (Presence.ReadWrite.All)
ME=$(./presenced token --user $U --scopes "Presence.Read.All Presence.ReadWrite")  # U, signed in
G=http://${PRESENCED_ADDR:-127.0.0.1:8080}/v1.0
J='Content-Type: application/json'

# An application sets its presence session for U (sessionId = the calling app's id).
curl -s --fail-with-body -X POST $G/users/$U/presence/setPresence -H "Authorization: Bearer $APP" -H "$J" \
  -d "{\"sessionId\":\"$A\",\"availability\":\"Busy\",\"activity\":\"InACall\",\"expirationDuration\":\"PT1H\"}"
curl -s --fail-with-body $G/users/$U/presence -H "Authorization: Bearer $APP"; echo
# {"@odata.context":"http://127.0.0.1:8080/v1.0/$metadata#users('fa8b…')/presence/$entity",
#  "id":"fa8b…","availability":"Busy","activity":"InACall","statusMessage":null,
#  "outOfOfficeSettings":{"message":null,"isOutOfOffice":false},"sequenceNumber":"A06…",
#  "workLocation":{"workLocationType":"unspecified","source":"none","placeId":null}}

# The user prefers Do Not Disturb: it overrides every session while one is live.
curl -s --fail-with-body -X POST $G/me/presence/setUserPreferredPresence -H "Authorization: Bearer $ME" -H "$J" \
  -d '{"availability":"DoNotDisturb","activity":"DoNotDisturb","expirationDuration":"PT8H"}'
curl -s --fail-with-body -X POST $G/me/presence/clearUserPreferredPresence -H "Authorization: Bearer $ME"

# A status message that expires in two hours, given in Pacific time (GNU date; on macOS: date -v+2H).
EXPIRY=$(TZ=America/Los_Angeles date -d '+2 hours' +%Y-%m-%dT%H:%M:%S)
curl -s --fail-with-body -X POST $G/me/presence/setStatusMessage -H "Authorization: Bearer $ME" -H "$J" \
  -d '{"statusMessage":{"message":{"content":"In the lab","contentType":"text"},
       "expiryDateTime":{"dateTime":"'$EXPIRY'","timeZone":"Pacific Standard Time"}}}'

# Many users at once (up to 650 ids), in request order.
curl -s --fail-with-body -X POST $G/communications/getPresencesByUserId -H "Authorization: Bearer $APP" -H "$J" \
  -d "{\"ids\":[\"$U\",\"66825e03-7ef5-42da-9069-724602c31f6b\"]}"; echo
