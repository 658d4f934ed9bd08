# SMTP: deploy/local/smtp_sink.py (aiosmtpd) on 127.0.0.1:2525 stores every message it receives
# as an .eml file under var/mail/. Log in var/log/smtp.log.

SMTP_MAIN=smtp_sink.py

smtp_start() {
  if pid_of smtp "$SMTP_MAIN" >/dev/null; then
    say "smtp is already running"
    return 0
  fi
  claim_port smtp 2525
  say "starting smtp on 127.0.0.1:2525 (messages in var/mail/)"
  spawn smtp "${UV_RUN[@]}" python "$HERE/$SMTP_MAIN"
  wait_for smtp "$SMTP_MAIN" 30 smtp_answers
}

# smtp_answers: the server greets with a 220 banner.
smtp_answers() {
  timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2525 && read -r line <&3 && [[ $line == 220* ]]' \
    2>/dev/null
}

smtp_stop() { terminate smtp "$SMTP_MAIN"; }
smtp_status() { report smtp "$SMTP_MAIN" 2525; }
