# S3: s3proxy, a real S3 server from Maven Central (s3proxy/pom.xml), on 127.0.0.1:9000 with
# identity darkroom / credential darkroom-secret. Its filesystem-nio2 backend keeps each object
# as a plain file, var/s3/<bucket>/<key>. Log in var/log/s3proxy.log.

S3_MAIN=org.gaul.s3proxy.Main

s3proxy_install() { fetch_jars s3proxy; }

s3proxy_start() {
  if pid_of s3proxy "$S3_MAIN" >/dev/null; then
    say "s3proxy is already running"
    return 0
  fi
  claim_port s3proxy 9000
  local java
  java=$(java_bin)
  mkdir -p "$VAR/s3"
  say "starting s3proxy on 127.0.0.1:9000"
  spawn s3proxy "$java" -Xmx256m -XX:+ExitOnOutOfMemoryError \
    -Dlogback.configurationFile="$HERE/s3proxy/logback.xml" \
    -Djclouds.filesystem.basedir="$VAR/s3" -cp "$JARS/s3proxy/*" \
    "$S3_MAIN" --properties "$HERE/s3proxy/s3proxy.properties"
  wait_for s3proxy "$S3_MAIN" 60 http_answers 9000
}

# http_answers PORT: an HTTP server answers there (any status: S3 refuses anonymous requests).
http_answers() {
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && printf "GET / HTTP/1.0\r\n\r\n" >&3 &&
    read -r line <&3 && [[ $line == HTTP/1.* ]]' "$1" 2>/dev/null
}

s3proxy_stop() { terminate s3proxy "$S3_MAIN"; }
s3proxy_status() { report s3proxy "$S3_MAIN" 9000; }
