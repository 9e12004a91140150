#!/usr/bin/env bash
# A private Postfix instance for the benchmark: its own config and queue under
# DIR, listening on 127.0.0.1:PORT, relaying everything to 127.0.0.1:SINK_PORT,
# no DNS, no local delivery. Usage: postfix_instance.sh start|stop DIR [PORT SINK_PORT]
set -euo pipefail
action=$1 dir=$2
if [ "$action" = stop ]; then
  postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
  exit 0
fi
port=$3 sink=$4
mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
sed -e "s/^smtp      inet  n       -       y/127.0.0.1:$port inet n       -       n/" \
    /etc/postfix/master.cf.proto > "$dir/etc/master.cf"
cat > "$dir/etc/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localdomain
mydomain = localdomain
myorigin = \$myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$sink
smtp_host_lookup = native
disable_dns_lookups = yes
smtpd_peername_lookup = no
smtputf8_enable = no
default_destination_concurrency_limit = 20
default_process_limit = 100
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtp_connection_cache_on_demand = yes
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
CONF
echo "postlog   unix-dgram n  -       n       -       1       postlogd" >> "$dir/etc/master.cf"
postfix -c "$dir/etc" set-permissions >/dev/null 2>&1 || true
postfix -c "$dir/etc" check
postfix -c "$dir/etc" start
