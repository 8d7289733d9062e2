# A certificate for rich notifications: presenced encrypts with receiver.crt, the receiver decrypts with receiver.key.
openssl req -x509 -newkey rsa:2048 -nodes -keyout receiver.key -out receiver.crt -days 30 -subj /CN=receiver 2>/dev/null
RECEIVER=${RECEIVER:-https://receiver.example/hook}    # your receiver's https URL (it must answer the handshake)
# The expiry is judged by the service clock: under --test-hooks read it from /_test/clock.
NOW=$(curl -s --fail-with-body $T/clock | sed -E 's/.*"now":"([^"]+)".*/\1/')
EXP=$(date -u -d "@$(( $(date -d "$NOW" +%s) + 50*60 ))" +%Y-%m-%dT%H:%M:%SZ)   # 50 minutes after it
curl -s --fail-with-body -X POST $G/subscriptions -H "Authorization: Bearer $ME" -H "$J" -d '{
  "changeType": "updated",
  "notificationUrl": "'$RECEIVER'",
  "resource": "communications/presences/66825e03-7ef5-42da-9069-724602c31f6b",
  "expirationDateTime": "'$EXP'",
  "clientState": "my-secret",
  "includeResourceData": true,
  "encryptionCertificate": "'$(openssl x509 -in receiver.crt -outform der | base64 -w0)'",
  "encryptionCertificateId": "receiver-2026"
}'; echo
# A change of that user: the receiver gets a notification.
curl -s --fail-with-body -X POST $G/users/66825e03-7ef5-42da-9069-724602c31f6b/presence/setPresence \
  -H "Authorization: Bearer $APP" -H "$J" \
  -d "{\"sessionId\":\"$A\",\"availability\":\"Busy\",\"activity\":\"InACall\",\"expirationDuration\":\"PT1H\"}"
