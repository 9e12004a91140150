#!/bin/sh
# The image's entrypoint (docs/container.md). With no arguments (or `run`) it
# runs the relay in the foreground, as PID 1, its log on standard output, on
#  - the file $UNSUBRELAY_CONFIG (default /etc/unsubrelay/unsubrelay.yaml) when
#    one is mounted there, used as it is (a key set is made in the volume on
#    first start all the same, for its keys_file to name); or else
#  - a configuration written from the UNSUBRELAY_* variables below into
#    /tmp/unsubrelay.yaml, with spool, store and key set in /var/lib/unsubrelay
#    (the volume) and the key set made there on first start.
# Other arguments are an unsubrelay command: `podman run --rm IMAGE keygen`.
# Only shell builtins and the relay: the image holds no other program.
set -eu

state=/var/lib/unsubrelay
generated=/tmp/unsubrelay.yaml
variables="UNSUBRELAY_BASE_URL UNSUBRELAY_UPSTREAM_KIND UNSUBRELAY_UPSTREAM_HOST UNSUBRELAY_UPSTREAM_PORT
UNSUBRELAY_UPSTREAM_TLS UNSUBRELAY_UPSTREAM_USERNAME UNSUBRELAY_UPSTREAM_USERNAME_FILE UNSUBRELAY_UPSTREAM_PASSWORD
UNSUBRELAY_UPSTREAM_PASSWORD_FILE UNSUBRELAY_UPSTREAM_MAX_MESSAGES_PER_SECOND UNSUBRELAY_SMTP_LISTEN
UNSUBRELAY_HTTP_LISTEN UNSUBRELAY_HOSTNAME UNSUBRELAY_STORE_URL UNSUBRELAY_KEYS_FILE UNSUBRELAY_LOG_LEVEL
UNSUBRELAY_LOG_FORMAT"

fail() {
    printf 'unsubrelay-entrypoint: %s\n' "$*" >&2
    exit 78  # EX_CONFIG
}

# NAME DEFAULT: $NAME, or DEFAULT when unset. The value goes into the YAML
# between double quotes, so it may hold none of " \ # ' nor spaces or control
# characters (none of the keys set here needs them; secrets go into files).
value() {
    v=
    eval "v=\${$1-\$2}"
    case $v in
        *[!]A-Za-z0-9._:/@%+=?\&~,[-]*) fail "$1 may hold only letters, digits and ._:/@%+=?&~,[]-" ;;
    esac
    printf '%s' "$v"
}

# NAME DEFAULT: a comma-separated value as a YAML flow list.
list() {
    l=$(value "$1" "$2")
    out=
    IFS=,
    for e in $l; do out="$out${out:+, }\"$e\""; done
    unset IFS
    printf '[%s]' "$out"
}

# NAME FILE: the file holding a secret: ${NAME}_FILE (a mounted secret) as it
# is, or $NAME written to FILE (0600) and unset, so that it is not left in the
# relay's environment.
secret_file() {
    eval "inline=\${$1-}"
    f=$(value "$1_FILE" "")
    [ -z "$inline" ] || [ -z "$f" ] || fail "set $1 or $1_FILE, not both"
    if [ -n "$inline" ]; then
        f=$2
        (umask 077 && printf '%s' "$inline" >"$f") || fail "cannot write $f"
    fi
    printf '%s' "$f"
}

upstream_section() {
    host=$(value UNSUBRELAY_UPSTREAM_HOST "")
    kind=$(value UNSUBRELAY_UPSTREAM_KIND "")
    [ -n "$kind" ] || { [ -n "$host" ] && kind=smtp; } || kind=directory
    case $kind in
        directory)
            printf '  kind: directory\n  directory: "%s/outbox"\n' "$state"
            return ;;
        smtp | ses) [ -n "$host" ] || fail "UNSUBRELAY_UPSTREAM_KIND=$kind needs UNSUBRELAY_UPSTREAM_HOST" ;;
        *) fail "UNSUBRELAY_UPSTREAM_KIND is smtp, ses or directory" ;;
    esac
    port=$(value UNSUBRELAY_UPSTREAM_PORT 587)
    tls=$(value UNSUBRELAY_UPSTREAM_TLS starttls)
    rate=$(value UNSUBRELAY_UPSTREAM_MAX_MESSAGES_PER_SECOND 0)
    user=$(secret_file UNSUBRELAY_UPSTREAM_USERNAME /tmp/unsubrelay-upstream-username)
    password=$(secret_file UNSUBRELAY_UPSTREAM_PASSWORD /tmp/unsubrelay-upstream-password)
    printf '  kind: %s\n  host: "%s"\n  port: %s\n  tls: "%s"\n  max_messages_per_second: %s\n' \
        "$kind" "$host" "$port" "$tls" "$rate"
    [ -z "$user" ] || printf '  username_file: "%s"\n' "$user"
    [ -z "$password" ] || printf '  password_file: "%s"\n' "$password"
}

store_section() {
    url=$(value UNSUBRELAY_STORE_URL "")
    if [ -n "$url" ]; then
        # The password: PGPASSWORD or PGPASSFILE, which libpq reads from the environment.
        printf '  kind: postgresql\n  url: "%s"\n' "$url"
    else
        printf '  kind: sqlite\n  path: "%s/unsubrelay.db"\n' "$state"
    fi
}

# The key set that signs the links, made in the volume on first start and
# kept from then on (links already sent must keep verifying).
make_keys() {
    if [ ! -e "$state/keys.yaml" ]; then
        /usr/bin/unsubrelay keygen -o "$state/keys.yaml" >/dev/null ||
            fail "cannot make a key set in $state: is the volume writable by the user 10001?"
        printf 'unsubrelay-entrypoint: made a new key set in %s\n' "$state/keys.yaml" >&2
    fi
}

# A mounted key set (a fleet shares one), or the volume's.
keys_file() {
    keys=$(value UNSUBRELAY_KEYS_FILE "")
    if [ -z "$keys" ]; then
        keys=$state/keys.yaml
        make_keys
    fi
    printf '%s' "$keys"
}

write_config() {
    smtp_listen=$(list UNSUBRELAY_SMTP_LISTEN 127.0.0.1:2525)
    http_listen=$(list UNSUBRELAY_HTTP_LISTEN 0.0.0.0:8080)
    hostname=$(value UNSUBRELAY_HOSTNAME "")
    base_url=$(value UNSUBRELAY_BASE_URL "")
    if [ -z "$base_url" ]; then
        base_url=http://127.0.0.1:8080
        printf 'unsubrelay-entrypoint: UNSUBRELAY_BASE_URL is unset: links will point to %s\n' "$base_url" >&2
    fi
    upstream=$(upstream_section)
    store=$(store_section)
    keys=$(keys_file)
    level=$(value UNSUBRELAY_LOG_LEVEL info)
    format=$(value UNSUBRELAY_LOG_FORMAT text)
    unset UNSUBRELAY_UPSTREAM_USERNAME UNSUBRELAY_UPSTREAM_PASSWORD
    (
        umask 077
        {
            printf '# Written by the image entrypoint from the UNSUBRELAY_* variables (docs/container.md).\n'
            printf 'smtp:\n  listen: %s\n' "$smtp_listen"
            [ -z "$hostname" ] || printf '  hostname: "%s"\n' "$hostname"
            printf 'upstream:\n%s\n' "$upstream"
            printf 'unsubscribe:\n  base_url: "%s"\n  keys_file: "%s"\n' "$base_url" "$keys"
            printf 'http:\n  listen: %s\n' "$http_listen"
            printf 'store:\n%s\n' "$store"
            printf 'spool:\n  path: "%s/spool"\n' "$state"
            printf 'log: { level: "%s", format: "%s" }\n' "$level" "$format"
        } >"$generated"
    ) || fail "cannot write $generated (a read-only root needs a writable /tmp)"
}

if [ $# -gt 0 ] && [ "$1" != run ]; then
    exec /usr/bin/unsubrelay "$@"
fi

# One log, on standard output: these lines and the relay's.
exec 2>&1
conf=${UNSUBRELAY_CONFIG:-/etc/unsubrelay/unsubrelay.yaml}
if [ -e "$conf" ]; then
    # A mounted file is the whole configuration: a variable beside it would be ignored.
    for name in $variables; do
        eval "set=\${$name+yes}"
        [ -z "$set" ] || fail "$name is set, but the mounted $conf is the configuration: put it there"
    done
    # For a file whose unsubscribe.keys_file is /var/lib/unsubrelay/keys.yaml (docs/container.md).
    make_keys
else
    [ -z "${UNSUBRELAY_CONFIG:-}" ] || fail "UNSUBRELAY_CONFIG=$conf: no such file"
    write_config
    conf=$generated
fi
exec /usr/bin/unsubrelay run -c "$conf"
