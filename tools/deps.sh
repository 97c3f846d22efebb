# shellcheck shell=bash
# deps.sh: the Debian 12 packages that building, testing and trying postbus need.
# Sourced by tools/run-tests and tools/try-postbus; defines functions only.

# One package a line: the build, then the test harness (tests/integration/sdenv
# boots the host's systemd with systemd-nspawn and enters it with nsenter).
POSTBUS_DEPS=(
    build-essential meson ninja-build pkg-config
    libsystemd-dev libssl-dev libgdbm-dev libdbus-1-dev libc-ares-dev libpcre2-dev
    clang libclang-rt-14-dev
    systemd systemd-container dbus util-linux mount passwd
    python3 python3-gdbm python3-dbus swaks openssl
    dnsmasq-base
    man-db pflogsumm
    # real peers of the smtp/lmtp agent (test_smtp_peers): smtp-sink and Postfix, Dovecot's LMTP server
    dovecot-core dovecot-lmtpd libnet-ssleay-perl
    postfix iproute2
    # the queue API's authorization (test_queue_control): a real polkitd
    polkitd
    # milters (test_milter): a test milter on libmilter's Python binding, OpenDKIM and a DKIM verifier
    python3-milter opendkim opendkim-tools python3-dkim
    # I/O errors injected into cleanup's system calls (test_io_errors)
    strace
    # policy services of check_policy_service (test_smtpd_policy): greylisting and SPF
    postgrey postfix-policyd-spf-python
    # the Debian package (tools/build-deb, test_deb)
    debhelper dpkg-dev lintian fakeroot
    # the Cockpit queue page (test_cockpit): cockpit-ws, and headless Chromium driven by Selenium
    cockpit-ws cockpit-bridge cockpit-system chromium chromium-driver python3-selenium
)

# Prints the packages of POSTBUS_DEPS that are not installed, one a line.
postbus_missing_deps() {
    local pkg
    for pkg in "${POSTBUS_DEPS[@]}"; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || echo "$pkg"
    done
}

# Installs what is missing (as root); runs 'apt-get update' only if something is.
postbus_install_deps() {
    local missing
    mapfile -t missing < <(postbus_missing_deps)
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ "$(id -u)" != 0 ]; then
        echo "missing packages (install them as root): ${missing[*]}" >&2
        return 1
    fi
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Servers the tests use (dovecot, a DNS server) run inside the test containers only: keep their
    # packages from starting them on this machine.
    local policy=/usr/sbin/policy-rc.d own_policy=0 rc=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && own_policy=1
    fi
    # postfix: for smtp-sink, smtp-source and a second MTA in the tests and bench/; never configured or
    # started on this machine (the tests and bench/ run their own instances in the containers).
    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
    apt-get update -q &&
        apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    [ $own_policy = 0 ] || rm -f "$policy"
    return $rc
}
