/* config-params.h: every main.cf parameter, declared once. Expanded into the Config struct, the parser
 * table, the sample main.cf and the documentation test.
 *
 * X(name, TYPE, default, min, max, roles, doc)
 *   TYPE is STRING, INT, SIZE (bytes), TIME (seconds; suffixes s m h d w) or BOOL (yes/no).
 *   Defaults are main.cf text, expanded like any value ($name, ${name}). min/max bound INT/SIZE/TIME.
 *   A STRING default of "" may be computed at load time (myhostname, mydomain). */
#pragma once

#define POSTBUS_CONFIG_PARAMS(X)                                                                              \
        X(myhostname, STRING, "", 0, 0, "all",                                                               \
          "The fully-qualified name of this host; empty means the name from gethostname().")                \
        X(mydomain, STRING, "", 0, 0, "all",                                                                 \
          "The internet domain of this host; empty means $myhostname without its first label.")             \
        X(mail_name, STRING, "postbus", 0, 0, "all",                                                          \
          "The mail system's name, for $mail_name in smtpd_banner and other values.")                      \
        X(data_directory, STRING, "/var/lib/postbus", 0, 0, "all",                                           \
          "Postfix's directory of its caches: postbus keeps none there; only $data_directory is expanded.")  \
        X(compatibility_level, STRING, "0", 0, 0, "all",                                                     \
          "Postfix's switch between old and new defaults; accepted, no effect in postbus (one set of them).") \
        X(readme_directory, STRING, "no", 0, 0, "all",                                                       \
          "Where Postfix's README files are; accepted, no effect in postbus (its manuals are man pages).")    \
        X(myorigin, STRING, "$myhostname", 0, 0, "cleanup",                                                  \
          "The domain that locally posted mail appears to come from; /path: the first line of that file.")  \
        X(mydestination, STRING, "$myhostname, localhost.$mydomain, localhost", 0, 0, "smtpd qmgr",          \
          "Domains delivered locally by the local role (list, separated by commas or spaces).")             \
        X(mynetworks, STRING, "127.0.0.0/8 [::1]/128", 0, 0, "smtpd",                                        \
          "Trusted client networks (CIDR list) that may relay mail to other domains.")                     \
        X(queue_directory, STRING, POSTBUS_SPOOLDIR, 0, 0, "smtpd cleanup qmgr bounce",                      \
          "The mail queue: incoming, active, deferred, hold and corrupt live below it.")                    \
        X(smtpd_banner, STRING, "$myhostname ESMTP $mail_name", 0, 0, "smtpd",                                  \
          "Text of the 220 greeting that follows the code.")                                                \
        X(line_length_limit, INT, "2048", 80, 1048576, "smtpd cleanup",                                              \
          "Longest SMTP command line accepted, in bytes, not counting CRLF (message lines may be longer).") \
        X(message_size_limit, SIZE, "10240000", 1024, 4294967295, "smtpd cleanup",                           \
          "Largest message accepted, in bytes of content.")                                                 \
        X(queue_minfree, SIZE, "0", 0, 1099511627776, "smtpd",                                               \
          "Free bytes the queue needs to take mail; smtpd also wants 1.5 x message_size_limit free.")     \
        X(smtpd_recipient_limit, INT, "1000", 1, 1000000, "smtpd",                                           \
          "Most recipients accepted in one SMTP transaction.")                                              \
        X(smtpd_timeout, TIME, "300s", 1, 86400, "smtpd",                                                    \
          "How long smtpd waits for the client to send the next command or the next piece of data.")        \
        X(smtpd_session_deadline, TIME, "3600s", 1, 604800, "smtpd",                                         \
          "Longest a whole SMTP session may last, however busy the client keeps it.")                       \
        X(smtpd_session_limit, INT, "1000", 1, 100000, "smtpd",                                              \
          "Most SMTP sessions served at once; more get 421 and are closed.")                                \
        X(smtpd_hard_error_limit, INT, "20", 1, 1000, "smtpd",                                                \
          "Most 5xx replies in one SMTP session, since its last accepted message, before 421 and close.")     \
        X(smtpd_junk_command_limit, INT, "100", 1, 100000, "smtpd",                                           \
          "NOOP, RSET and VRFY commands in one SMTP session beyond this many count as errors.")               \
        X(inet_interfaces, STRING, "all", 0, 0, "smtpd",                                                     \
          "all; the addresses smtpd listens on are ListenStream= of its socket units (systemctl edit); "     \
          "any other value is compared with the sockets smtpd was given, and a mismatch is warned about.")  \
        X(strict_rfc821_envelopes, BOOL, "no", 0, 0, "smtpd",                                                \
          "Require <> around the addresses of MAIL FROM and RCPT TO; no: a bare address is taken too.")     \
        X(smtpd_helo_required, BOOL, "no", 0, 0, "smtpd",                                                    \
          "Require HELO or EHLO before MAIL (503 otherwise); no: MAIL may come first.")                     \
        X(smtputf8_enable, BOOL, "yes", 0, 0, "smtpd",                                                       \
          "Announce SMTPUTF8 (RFC 6531) in EHLO and take it in MAIL; no: MAIL with SMTPUTF8 gets 555.")      \
        X(smtpd_tls_cert_file, STRING, "", 0, 0, "smtpd",                                                    \
          "PEM server certificate (chain) for STARTTLS and port 465; empty: no TLS. Readable by postbus.")  \
        X(smtpd_tls_key_file, STRING, "$smtpd_tls_cert_file", 0, 0, "smtpd",                                 \
          "PEM private key of smtpd_tls_cert_file; must be readable by the user postbus.")                  \
        X(smtpd_tls_security_level, STRING, "may", 0, 0, "smtpd",                                            \
          "none, may (offer STARTTLS when a certificate is set) or encrypt (no MAIL before STARTTLS).")      \
        X(smtpd_tls_wrappermode, BOOL, "no", 0, 0, "smtpd",                                                  \
          "TLS from the first byte (port 465) instead of STARTTLS; smtps_ sets it for the smtps socket.")    \
        X(smtpd_sasl_auth_enable, BOOL, "no", 0, 0, "smtpd",                                                 \
          "Offer AUTH (PLAIN, LOGIN; only over TLS), checked by Dovecot; on by default for 587 and 465.")   \
        X(smtpd_sasl_type, STRING, "dovecot", 0, 0, "smtpd",                                                 \
          "The SASL authentication server smtpd asks; only dovecot is supported.")                          \
        X(smtpd_sasl_path, STRING, "/run/dovecot/auth-postbus", 0, 0, "smtpd",                               \
          "Absolute path of Dovecot's auth client socket, which the user postbus may connect to.")          \
        X(smtpd_tls_auth_only, BOOL, "yes", 0, 0, "smtpd",                                                   \
          "AUTH only over TLS. Always so in postbus (Postfix's default is no); no is warned about and ignored.") \
        X(smtpd_sasl_security_options, STRING, "noanonymous", 0, 0, "smtpd",                                 \
          "postbus offers PLAIN and LOGIN, never anonymous: noanonymous holds; noplaintext is warned about.") \
        X(broken_sasl_auth_clients, BOOL, "no", 0, 0, "smtpd",                                               \
          "Also announce AUTH in the old AUTH=PLAIN LOGIN form in EHLO, for clients that know only that.")   \
        X(smtpd_client_restrictions, STRING, "", 0, 0, "smtpd",                                               \
          "Restrictions on the client address (at RCPT with smtpd_delay_reject, else at connect).")           \
        X(smtpd_helo_restrictions, STRING, "", 0, 0, "smtpd",                                                 \
          "Restrictions on the HELO/EHLO name (at RCPT with smtpd_delay_reject, else at HELO).")              \
        X(smtpd_sender_restrictions, STRING, "", 0, 0, "smtpd",                                               \
          "Restrictions on the MAIL FROM address (at RCPT with smtpd_delay_reject, else at MAIL).")           \
        X(smtpd_relay_restrictions, STRING, "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination", 0, 0, "smtpd",\
          "Relay control at RCPT, before smtpd_recipient_restrictions.")                                      \
        X(smtpd_recipient_restrictions, STRING, "", 0, 0, "smtpd",                                            \
          "Restrictions on the RCPT TO address, after smtpd_relay_restrictions.")                             \
        X(smtpd_data_restrictions, STRING, "", 0, 0, "smtpd",                                                 \
          "Restrictions at DATA (and the first BDAT), whatever smtpd_delay_reject says.")                    \
        X(smtpd_end_of_data_restrictions, STRING, "", 0, 0, "smtpd",                                          \
          "Restrictions once the whole message is in, before it is queued.")                                  \
        X(smtpd_delay_reject, BOOL, "yes", 0, 0, "smtpd",                                                     \
          "Evaluate the client, HELO and sender restrictions at RCPT, so that rejections come at RCPT.")      \
        X(smtpd_reject_unlisted_recipient, BOOL, "yes", 0, 0, "smtpd",                                        \
          "Reject recipients of local domains not in local_recipient_maps, even without the restriction.")    \
        X(smtpd_reject_unlisted_sender, BOOL, "no", 0, 0, "smtpd",                                            \
          "Reject senders of local, hosted and relayed domains not known as recipients (reject_unlisted_sender).") \
        X(smtpd_restriction_classes, STRING, "", 0, 0, "smtpd",                                               \
          "Names of restriction lists (each a main.cf line of that name), usable as restrictions and actions.") \
        X(reject_tempfail_action, STRING, "defer_if_permit", 0, 0, "smtpd",                                   \
          "What a restriction does when DNS fails temporarily: defer (450 now) or defer_if_permit (450 at the end).") \
        X(unknown_helo_hostname_tempfail_action, STRING, "$reject_tempfail_action", 0, 0, "smtpd",            \
          "reject_tempfail_action for reject_unknown_helo_hostname.")                                          \
        X(unknown_address_tempfail_action, STRING, "$reject_tempfail_action", 0, 0, "smtpd",                  \
          "reject_tempfail_action for reject_unknown_sender_domain and reject_unknown_recipient_domain.")      \
        X(local_recipient_maps, STRING, "unix:passwd.byname $alias_maps", 0, 0, "smtpd",                      \
          "Local recipients smtpd knows: users (unix:passwd.byname) and table keys; empty: no check.")        \
        X(smtpd_soft_error_limit, INT, "10", 1, 1000, "smtpd",                                                \
          "Errors in one SMTP session after which each reply is delayed by smtpd_error_sleep_time.")          \
        X(smtpd_error_sleep_time, TIME, "1s", 0, 600, "smtpd",                                                \
          "Delay of each reply once a session has made smtpd_soft_error_limit errors (timer, not sleep).")    \
        X(smtpd_client_connection_count_limit, INT, "50", 0, 100000, "smtpd",                                 \
          "Most SMTP sessions at once from one client address; 0: no limit.")                                 \
        X(smtpd_client_connection_rate_limit, INT, "0", 0, 100000000, "smtpd",                                \
          "Most new SMTP sessions from one client address per anvil_rate_time_unit; 0: no limit.")            \
        X(smtpd_client_message_rate_limit, INT, "0", 0, 100000000, "smtpd",                                   \
          "Most MAIL commands from one client address per anvil_rate_time_unit; 0: no limit.")                \
        X(smtpd_client_recipient_rate_limit, INT, "0", 0, 100000000, "smtpd",                                 \
          "Most RCPT commands from one client address per anvil_rate_time_unit; 0: no limit.")                \
        X(smtpd_client_event_limit_exceptions, STRING, "$mynetworks", 0, 0, "smtpd",                          \
          "Client networks (CIDR list) exempt from the per-client connection, message and recipient limits.") \
        X(anvil_rate_time_unit, TIME, "60s", 1, 86400, "smtpd",                                               \
          "The time unit over which per-client connection, message and recipient rates are counted.")         \
        X(smtpd_client_table_limit, INT, "100000", 100, 10000000, "smtpd",                                    \
          "Most client addresses smtpd keeps rate counters for; the longest idle are forgotten first.")       \
        X(disable_vrfy_command, BOOL, "no", 0, 0, "smtpd",                                                    \
          "Answer VRFY with 502 instead of telling whether a local user exists.")                             \
        X(smtpd_discard_ehlo_keywords, STRING, "", 0, 0, "smtpd",                                             \
          "EHLO keywords not offered (any case; silent-discard: not logged); their commands count as unknown.")\
        X(smtpd_discard_ehlo_keyword_address_maps, STRING, "", 0, 0, "smtpd",                                 \
          "Tables of the EHLO keywords not offered, by client address; else smtpd_discard_ehlo_keywords.")    \
        X(smtpd_reject_footer, STRING, "", 0, 0, "smtpd",                                                     \
          "Text after every 4xx/5xx reply: \\n a new line, \\c at the start: on the same line; $client_address..")\
        X(smtpd_reject_footer_maps, STRING, "", 0, 0, "smtpd",                                                \
          "Tables of footers by the complete reply (regexp:, pcre:), before smtpd_reject_footer.")          \
        X(smtpd_forbid_bare_newline, STRING, "normalize", 0, 0, "smtpd",                                      \
          "normalize (a bare LF ends a line, never the message) or reject (521 and disconnect).")             \
        X(smtpd_forbid_bare_newline_exclusions, STRING, "$mynetworks", 0, 0, "smtpd",                         \
          "Client networks (CIDR list) for which smtpd_forbid_bare_newline = reject only normalizes.")        \
        X(hopcount_limit, INT, "50", 1, 1000, "cleanup",                                                     \
          "Most Received headers a message may carry before it is rejected as a mail loop.")               \
        X(cleanup_sync_threads, INT, "4", 0, 64, "cleanup",                                                  \
          "Threads in cleanup that sync queue files beside its event loop; 0: no threads.")                  \
        X(cleanup_directory_sync, STRING, "auto", 0, 0, "cleanup",                                           \
          "Sync incoming/ after each rename into it: yes; no (the file, synced after its rename, carries "     \
          "the name on ext4, XFS and btrfs); auto: no on those, yes elsewhere.")                              \
        X(append_at_myorigin, BOOL, "yes", 0, 0, "rewrite",                                                  \
          "Append @$myorigin to an address without a domain.")                                             \
        X(append_dot_mydomain, BOOL, "no", 0, 0, "rewrite",                                                  \
          "Append .$mydomain to a domain without a dot.")                                                   \
        X(allow_percent_hack, BOOL, "yes", 0, 0, "rewrite",                                                  \
          "Rewrite user%domain (an address without @) to user@domain.")                                     \
        X(swap_bangpath, BOOL, "yes", 0, 0, "rewrite",                                                       \
          "Rewrite the UUCP form host!user (an address without @) to user@host.")                           \
        X(relayhost, STRING, "", 0, 0, "rewrite",                                                            \
          "Next hop for mail to other domains ([host] means no MX lookup); empty: the recipient domain.")  \
        X(local_transport, STRING, "local:$myhostname", 0, 0, "rewrite",                                     \
          "Transport (and next hop) for domains in $mydestination.")                                        \
        X(default_transport, STRING, "smtp", 0, 0, "rewrite",                                                \
          "Transport (and next hop) for other domains, unless transport_maps says otherwise.")              \
        X(transport_maps, STRING, "", 0, 0, "rewrite",                                                       \
          "Tables of transport:nexthop by address, domain and .parent domain (transport(5)).")             \
        X(virtual_mailbox_domains, STRING, "$virtual_mailbox_maps", 0, 0, "rewrite smtpd",                   \
          "Hosted domains whose mailboxes are not Unix users: names, or tables whose keys are the domains.") \
        X(virtual_transport, STRING, "virtual", 0, 0, "rewrite",                                             \
          "Transport (and next hop) for domains in $virtual_mailbox_domains, e.g. lmtp:unix:/path.")        \
        X(relay_domains, STRING, "", 0, 0, "rewrite smtpd",                                                   \
          "Domains (and their subdomains) this server relays to: names, or tables whose keys are domains.")  \
        X(relay_transport, STRING, "relay", 0, 0, "rewrite",                                                   \
          "Transport (and next hop) for domains in $relay_domains.")                                       \
        X(relay_recipient_maps, STRING, "", 0, 0, "smtpd",                                                     \
          "Tables of the known recipients (or @domain) of $relay_domains; empty: every recipient is known.") \
        X(virtual_mailbox_maps, STRING, "", 0, 0, "smtpd virtual",                                           \
          "Tables of the mailbox of each hosted address (or @domain), relative to virtual_mailbox_base.")    \
        X(virtual_mailbox_base, STRING, "", 0, 0, "virtual",                                                 \
          "Directory that every virtual mailbox path is below; a value ending in / is a Maildir.")          \
        X(virtual_uid_maps, STRING, "", 0, 0, "virtual",                                                     \
          "Tables (or static:uid) of the uid that writes each hosted address's mailbox.")                   \
        X(virtual_gid_maps, STRING, "", 0, 0, "virtual",                                                     \
          "Tables (or static:gid) of the gid that writes each hosted address's mailbox.")                   \
        X(virtual_minimum_uid, INT, "100", 1, 2147483647, "virtual",                                          \
          "Smallest uid the virtual agent writes a mailbox as; a smaller one defers the delivery.")         \
        X(virtual_mailbox_limit, SIZE, "51200000", 0, 1099511627776, "virtual",                              \
          "Largest mbox file or Maildir message file that the virtual agent writes, in bytes; 0: no limit.") \
        X(virtual_mailbox_lock, STRING, "fcntl, dotlock", 0, 0, "virtual",                                   \
          "How the virtual agent locks an mbox file: fcntl, dotlock, or both.")                             \
        X(canonical_maps, STRING, "", 0, 0, "cleanup",                                                       \
          "Tables that rewrite sender and recipient addresses, envelope and headers (canonical(5)).")      \
        X(sender_canonical_maps, STRING, "", 0, 0, "cleanup",                                                \
          "Like canonical_maps, for sender addresses only; tried before canonical_maps.")                   \
        X(recipient_canonical_maps, STRING, "", 0, 0, "cleanup",                                             \
          "Like canonical_maps, for recipient addresses only; tried before canonical_maps.")                \
        X(masquerade_domains, STRING, "", 0, 0, "cleanup",                                                   \
          "Domains whose subdomains are stripped from sender addresses (!domain: do not strip).")          \
        X(masquerade_exceptions, STRING, "", 0, 0, "cleanup",                                                \
          "Local parts (user names) whose addresses are never masqueraded.")                                \
        X(virtual_alias_maps, STRING, "", 0, 0, "cleanup",                                                   \
          "Tables that redirect recipients to other addresses, recursively (virtual(5)).")                 \
        X(virtual_alias_expansion_limit, INT, "1000", 1, 100000, "cleanup",                                  \
          "Most addresses one recipient may expand into through virtual_alias_maps.")                      \
        X(virtual_alias_recursion_limit, INT, "1000", 1, 100000, "cleanup",                                  \
          "Deepest nesting of virtual_alias_maps expansions of one recipient.")                            \
        X(soft_bounce, BOOL, "no", 0, 0, "smtpd qmgr local smtp pipe virtual",                                 \
          "Keep mail queued that would be returned: a permanent failure is a deferral (SOFTBOUNCE), 5xx is 4xx.") \
        X(always_bcc, STRING, "", 0, 0, "cleanup",                                                           \
          "An address that gets a blind carbon copy (an envelope recipient, NOTIFY=NEVER) of all new mail.") \
        X(sender_bcc_maps, STRING, "", 0, 0, "cleanup",                                                      \
          "Tables of a BCC address by envelope sender, for new mail (the first address of a result).")     \
        X(recipient_bcc_maps, STRING, "", 0, 0, "cleanup",                                                   \
          "Tables of a BCC address by each envelope recipient, for new mail (as sender_bcc_maps).")        \
        X(header_checks, STRING, "", 0, 0, "cleanup",                                                        \
          "regexp: tables of /pattern/flags ACTION rules for each header of the message but its MIME ones.") \
        X(internal_mail_filter_classes, STRING, "", 0, 0, "cleanup",                                         \
          "Which notices that postbus makes itself (bounce, notify) header_checks and body_checks inspect; "  \
          "empty: none, as in Postfix.")                                                                    \
        X(mime_header_checks, STRING, "$header_checks", 0, 0, "cleanup",                                     \
          "Rules as header_checks for MIME headers (MIME-Version, Content-*) anywhere and every header of a "  \
          "multipart's parts.")                                                                              \
        X(nested_header_checks, STRING, "$header_checks", 0, 0, "cleanup",                                   \
          "Rules as header_checks for the other headers of attached messages (message/rfc822).")            \
        X(disable_mime_input_processing, BOOL, "no", 0, 0, "cleanup",                                        \
          "yes: the body is not read as MIME: no part headers, everything after the header is body_checks'.") \
        X(mime_nesting_limit, INT, "100", 1, 1000, "cleanup smtp",                                            \
          "Most multiparts and attached messages followed one inside another; deeper content is body.")     \
        X(body_checks, STRING, "", 0, 0, "cleanup",                                                          \
          "regexp: tables of /pattern/flags ACTION rules for each body line, multipart boundaries included.") \
        X(body_checks_size_limit, INT, "51200", 0, 1073741824, "cleanup smtp",                                \
          "How much of the body, in bytes from its start, body_checks look at.")                          \
        X(always_add_missing_headers, BOOL, "no", 0, 0, "cleanup",                                          \
          "yes: From, Date, Message-ID (and undisclosed_recipients_header) go into all mail; no: local mail only.") \
        X(undisclosed_recipients_header, STRING, "", 0, 0, "cleanup",                                        \
          "A header (\"To: undisclosed-recipients:;\") added with those to mail without To or Cc; empty: none.") \
        X(message_reject_characters, STRING, "", 0, 0, "cleanup",                                            \
          "Bytes (C-like escapes: \\0 \\r \\ddd ...) that get a message refused, in its headers or body.")        \
        X(message_strip_characters, STRING, "", 0, 0, "cleanup",                                             \
          "Bytes (escaped as message_reject_characters) removed from the headers and body of a message.")   \
        X(header_size_limit, INT, "102400", 1, 1048576, "cleanup smtp",                                       \
          "Longest logical header (continuation lines joined) that cleanup parses and checks, in bytes.")   \
        X(max_idle, TIME, "100s", 1, 86400, "smtpd cleanup local pipe",                                      \
          "How long a socket-activated role waits idle for new work before it exits.")                      \
        X(bus_connection_limit, INT, "256", 1, 100000, "qmgr cleanup rewrite bounce local pipe smtp",        \
          "Most bus connections from other roles a role serves at once; more wait until one closes.")        \
        X(daemon_timeout, TIME, "18000s", 10, 604800, "qmgr cleanup local pipe smtpd",                        \
          "How long one request to another role (a delivery, a submission) may take before it is given up.") \
        X(queue_run_delay, TIME, "300s", 1, 86400, "qmgr",                                                   \
          "How often qmgr scans the incoming and deferred queues.")                                         \
        X(minimal_backoff_time, TIME, "300s", 1, 864000, "qmgr",                                             \
          "How long a message waits in the deferred queue after a temporary failure.")                      \
        X(qmgr_message_active_limit, INT, "20000", 1, 10000000, "qmgr",                                      \
          "Most messages in the active queue at once.")                                                     \
        X(default_process_limit, INT, "100", 1, 10000, "qmgr local pipe",                                    \
          "Most deliveries in progress at once for one delivery role.")                                     \
        X(maximal_backoff_time, TIME, "4000s", 1, 8640000, "qmgr",                                           \
          "Longest wait in the deferred queue between two attempts; waits grow with the message's age.")   \
        X(maximal_queue_lifetime, TIME, "5d", 0, 8640000, "qmgr bounce",                                     \
          "How long a message may stay queued before its remaining recipients are returned; 0: one try.")   \
        X(bounce_queue_lifetime, TIME, "5d", 0, 8640000, "qmgr bounce",                                      \
          "maximal_queue_lifetime for mail from the null sender (bounces and other notices).")              \
        X(delay_warning_time, TIME, "0h", 0, 8640000, "qmgr",                                                \
          "After how long in the queue the sender hears that a message is delayed, once; 0: never.")         \
        X(defer_transports, STRING, "", 0, 0, "qmgr",                                                        \
          "Transports whose mail is not delivered but deferred (e.g. a dial-up link that is down).")         \
        X(relocated_maps, STRING, "", 0, 0, "qmgr",                                                          \
          "Tables of users who moved: a recipient found there bounces with 5.1.6 and the new address.")      \
        X(qmgr_message_recipient_limit, INT, "20000", 1, 10000000, "qmgr",                                   \
          "Most recipients of active messages that qmgr keeps scheduled in memory at once.")                 \
        X(delivery_crash_limit, INT, "3", 0, 1000, "qmgr",                                                   \
          "Crashes of a delivery agent with one message alone in progress after which it goes to hold; 0: never.") \
        X(transport_retry_time, TIME, "60s", 1, 86400, "qmgr",                                               \
          "Longest wait between two attempts to reach a delivery agent that is down or died.")             \
        X(initial_destination_concurrency, INT, "5", 1, 1000, "qmgr",                                        \
          "Deliveries at once to a new destination; it grows with success up to its concurrency limit.")   \
        X(default_destination_concurrency_limit, INT, "20", 1, 1000, "qmgr",                                 \
          "Most deliveries at once to one destination; <transport>_destination_concurrency_limit overrides.") \
        X(default_destination_recipient_limit, INT, "50", 1, 100000, "qmgr",                                 \
          "Most recipients per delivery; <transport>_destination_recipient_limit overrides; 1: per recipient.") \
        X(default_destination_rate_delay, TIME, "0s", 0, 3600, "qmgr",                                       \
          "Pause between two deliveries to one destination (concurrency 1 then); 0: none.")                  \
        X(default_destination_concurrency_failed_cohort_limit, INT, "1", 1, 1000, "qmgr",                    \
          "Failed pseudo-cohorts after which a destination is dead until minimal_backoff_time has passed.")  \
        X(local_destination_concurrency_limit, INT, "2", 1, 1000, "qmgr",                                    \
          "Most deliveries at once to one local recipient (local's recipient limit is 1).")                  \
        X(local_destination_recipient_limit, INT, "1", 1, 100000, "qmgr",                                    \
          "Recipients per local delivery; 1 makes local's concurrency limit count per user.")               \
        X(mailbox_transport, STRING, "", 0, 0, "local",                                                      \
          "transport:nexthop (an lmtp service of master.cf: lmtp:unix:/run/dovecot/lmtp) that local hands "  \
          "every mailbox delivery to, after aliases and .forward, users without an account included.")     \
        X(fallback_transport, STRING, "", 0, 0, "local",                                                     \
          "transport:nexthop (an lmtp service) for recipients with neither alias nor account, before "      \
          "luser_relay.")                                                                                    \
        X(mailbox_transport_maps, STRING, "", 0, 0, "local",                                                 \
          "Tables of a transport:nexthop per user name, before mailbox_transport.")                          \
        X(fallback_transport_maps, STRING, "", 0, 0, "local",                                                \
          "Tables of a transport:nexthop per user name, before fallback_transport.")                         \
        X(mailbox_command_maps, STRING, "", 0, 0, "local",                                                   \
          "Tables of a mailbox command per user name, before mailbox_command (taken as written).")            \
        X(mailbox_command, STRING, "", 0, 0, "local",                                                        \
          "Command that delivers to a user's mailbox instead (procmail): as the user, with /bin/sh -c and "   \
          "local's command environment ($EXTENSION...); never $name-expanded in main.cf. Empty: none.")     \
        X(home_mailbox, STRING, "", 0, 0, "local",                                                           \
          "Mailbox path relative to the home directory; ending in / means Maildir. Empty: mail spool file.") \
        X(mail_spool_directory, STRING, POSTBUS_MAIL_SPOOL_DIRECTORY, 0, 0, "local",                         \
          "Directory of the UNIX mbox files, one per user, when home_mailbox is empty.")                    \
        X(mailbox_size_limit, SIZE, "51200000", 0, 1099511627776, "local",                                   \
          "Largest mailbox file or Maildir message file that local delivery writes, in bytes; 0: no limit.") \
        X(mailbox_delivery_lock, STRING, "fcntl, dotlock", 0, 0, "local",                                    \
          "How local locks an mbox file (a spool or home mailbox, a /file destination): fcntl, dotlock, or both.") \
        X(deliver_lock_attempts, INT, "20", 1, 1000, "local",                                                \
          "Most attempts to lock a mailbox (dot-lock file, then fcntl lock) before delivery is deferred.")   \
        X(deliver_lock_delay, TIME, "1s", 1, 60, "local",                                                    \
          "Time between two attempts to lock a mailbox.")                                                   \
        X(stale_lock_time, TIME, "500s", 10, 86400, "local",                                                 \
          "Age after which a mailbox dot-lock file is taken to be stale and removed.")                       \
        X(biff, BOOL, "no", 0, 0, "local",                                                                   \
          "Postfix's comsat notice of new mail (its default: yes). postbus sends none: local has no "        \
          "network (PrivateNetwork=yes); yes is warned about and ignored.")                                 \
        X(alias_maps, STRING, "hash:/etc/aliases", 0, 0, "local smtpd",                                      \
          "Alias tables (aliases(5) format, built by newaliases) that local expands recipients with.")       \
        X(alias_database, STRING, "hash:/etc/aliases", 0, 0, "local",                                       \
          "The alias tables that newaliases (sendmail -bi) builds; type:path, list.")                        \
        X(forward_path, STRING, "$home/.forward${recipient_delimiter}${extension}, $home/.forward", 0, 0, "local",\
          "Forward files looked for, first found wins; expanded per delivery ($home $user $local ...).")     \
        X(default_privs, STRING, "nobody", 0, 0, "local",                                                    \
          "User that commands and files of root-owned alias tables and :include: files run as.")             \
        X(allow_mail_to_commands, STRING, "alias, forward", 0, 0, "local",                                   \
          "Where |command destinations are allowed: alias, forward and/or include.")                         \
        X(allow_mail_to_files, STRING, "alias, forward", 0, 0, "local",                                      \
          "Where /file destinations are allowed: alias, forward and/or include.")                            \
        X(command_time_limit, TIME, "1000s", 1, 86400, "local pipe",                                         \
          "Longest a |command delivery may run before its process group is killed and the mail bounced.")    \
        X(duplicate_filter_limit, INT, "1000", 1, 1000000, "local",                                          \
          "Most destinations one recipient may expand into through aliases, :include: and .forward files.")  \
        X(owner_request_special, BOOL, "yes", 0, 0, "local",                                                 \
          "owner-foo aliases: mail through alias foo is forwarded with sender owner-foo; no split at '-'.")  \
        X(luser_relay, STRING, "", 0, 0, "local",                                                            \
          "Address that mail for unknown local users goes to ($user $local $extension $domain $recipient).")\
        X(recipient_delimiter, STRING, "", 0, 0, "local pipe",                                               \
          "Characters that separate a user name from an address extension (user+ext); empty: none.")         \
        X(export_environment, STRING, "TZ MAIL_CONFIG LANG", 0, 0, "pipe",                                   \
          "Environment variables pipe passes on from its own environment to commands, besides PATH.")       \
        X(bounce_size_limit, INT, "50000", 1, 1073741824, "bounce",                                          \
          "Largest original message returned whole in a delivery report; larger ones: headers only.")       \
        X(notify_classes, STRING, "resource, software", 0, 0, "bounce",                                      \
          "Problems the postmaster is told of: bounce, 2bounce, delay, policy, protocol, resource, software.") \
        X(bounce_notice_recipient, STRING, "postmaster", 0, 0, "bounce",                                     \
          "Who gets the headers of each non-delivery report when notify_classes has bounce.")               \
        X(double_bounce_notice_recipient, STRING, "postmaster", 0, 0, "bounce",                              \
          "Who gets reports that cannot go back to their sender (mail from <>) when notify_classes has 2bounce.") \
        X(delay_notice_recipient, STRING, "postmaster", 0, 0, "bounce",                                      \
          "Who gets the headers of each delay warning when notify_classes has delay.")                      \
        X(error_notice_recipient, STRING, "postmaster", 0, 0, "bounce",                                      \
          "Who gets notices of resource, software, policy and protocol problems that notify_classes names.") \
        X(double_bounce_sender, STRING, "double-bounce", 0, 0, "bounce",                                     \
          "Sender of postmaster notices; mail from it that cannot be delivered is discarded, never returned.") \
        X(smtp_connect_timeout, TIME, "30s", 1, 3600, "smtp",                                                \
          "How long the smtp client waits for a TCP connection to a server (or LMTP socket) to complete.")   \
        X(smtp_helo_timeout, TIME, "300s", 1, 3600, "smtp",                                                  \
          "How long the smtp client waits for the server's greeting and for the reply to EHLO, HELO or LHLO.") \
        X(smtp_mail_timeout, TIME, "300s", 1, 3600, "smtp",                                                  \
          "How long the smtp client waits for the reply to MAIL FROM.")                                     \
        X(smtp_rcpt_timeout, TIME, "300s", 1, 3600, "smtp",                                                  \
          "How long the smtp client waits for the reply to each RCPT TO.")                                  \
        X(smtp_data_init_timeout, TIME, "120s", 1, 3600, "smtp",                                             \
          "How long the smtp client waits for the reply (354) to DATA.")                                    \
        X(smtp_data_xfer_timeout, TIME, "180s", 1, 3600, "smtp",                                             \
          "How long the smtp client waits for the server to take each further piece of the message.")       \
        X(smtp_data_done_timeout, TIME, "600s", 1, 3600, "smtp",                                             \
          "How long the smtp client waits for the reply to the final dot of the message.")                  \
        X(smtp_quit_timeout, TIME, "300s", 1, 3600, "smtp",                                                  \
          "How long the smtp client waits for the reply to QUIT before it closes the connection.")          \
        X(smtp_line_length_limit, INT, "998", 0, 1048576, "smtp",                                            \
          "Longest message line the smtp client sends; longer ones go on after CRLF SPACE. 0: no limit.")    \
        X(smtp_mx_address_limit, INT, "5", 0, 1000, "smtp",                                                 \
          "Most server addresses (over all MX hosts) the smtp client tries for one delivery; 0: no limit.") \
        X(smtp_mx_session_limit, INT, "2", 0, 1000, "smtp",                                                 \
          "Most SMTP sessions the smtp client opens for one delivery (failed connects do not count); 0: no limit.") \
        X(smtp_header_checks, STRING, "", 0, 0, "smtp",                                                      \
          "Rules as header_checks for the headers of mail the smtp client sends: IGNORE, PREPEND, REPLACE, WARN.") \
        X(smtp_mime_header_checks, STRING, "", 0, 0, "smtp",                                                 \
          "Rules as mime_header_checks for the MIME headers of mail the smtp client sends.")               \
        X(smtp_nested_header_checks, STRING, "", 0, 0, "smtp",                                               \
          "Rules as nested_header_checks for the headers of attached messages in mail the smtp client sends.") \
        X(smtp_body_checks, STRING, "", 0, 0, "smtp",                                                        \
          "Rules as body_checks for the body lines of mail the smtp client sends.")                        \
        X(smtp_generic_maps, STRING, "", 0, 0, "smtp",                                                       \
          "Tables (generic(5)) that rewrite the envelope and header addresses of mail the smtp client sends.") \
        X(smtp_helo_name, STRING, "$myhostname", 0, 0, "smtp",                                               \
          "The host name the smtp client sends in EHLO, HELO and LHLO.")                                    \
        X(smtp_tls_security_level, STRING, "", 0, 0, "smtp",                                                 \
          "none (or empty), may (STARTTLS when offered), encrypt (STARTTLS or no mail), verify (a certificate "  \
          "from a trusted CA naming the server) or secure (verify, names from the next hop) for the smtp client.") \
        X(smtp_host_failure_cache_time, TIME, "5m", 0, 86400, "smtp",                                         \
          "postbus's own, not Postfix's: how long the smtp client tries a server address that timed out or "  \
          "refused the connection only after the others of its list; 0: no host cache.")                    \
        X(smtp_connection_cache_on_demand, BOOL, "yes", 0, 0, "smtp",                                        \
          "Keep a session open after its transaction while qmgr has more mail for the same destination.")    \
        X(smtp_connection_cache_destinations, STRING, "", 0, 0, "smtp",                                       \
          "Next hops (as transport_maps writes them: domain, [host]:port, ...) whose sessions are always "   \
          "kept open after a transaction, for the next delivery to them.")                                  \
        X(smtp_connection_cache_time_limit, TIME, "2s", 1, 3600, "smtp",                                      \
          "How long a kept session waits unused for its next delivery before it is closed.")                \
        X(smtp_connection_reuse_time_limit, TIME, "300s", 1, 86400, "smtp",                                   \
          "A session that began longer ago than this is not kept for another delivery.")                    \
        X(smtp_connection_reuse_count_limit, INT, "0", 0, 1000000, "smtp",                                    \
          "Most transactions one session carries before it is closed; 0: no limit.")                        \
        X(smtp_rset_timeout, TIME, "20s", 1, 3600, "smtp",                                                    \
          "How long the smtp client waits for the reply to RSET, sent before a kept session is used again.") \
        X(smtp_fallback_relay, STRING, "", 0, 0, "smtp",                                                      \
          "Hosts (host, [host], host:port) tried after every server address of a destination failed with "  \
          "a temporary error; never after a 5xx. Not used by lmtp.")                                        \
        X(smtp_address_preference, STRING, "any", 0, 0, "smtp",                                               \
          "Which addresses of one MX host the smtp client tries first: ipv4, ipv6 or any (as DNS gave them).") \
        X(inet_protocols, STRING, "all", 0, 0, "smtp",                                                        \
          "The address families the smtp client looks up and connects to: ipv4, ipv6, or all (both).")       \
        X(smtp_tls_CAfile, STRING, "", 0, 0, "smtp",                                                         \
          "A file of trusted CA certificates (PEM) for smtp_tls_security_level verify and secure.")         \
        X(smtp_tls_CApath, STRING, "", 0, 0, "smtp",                                                         \
          "A directory of trusted CA certificates (c_rehash form) for verify and secure.")                  \
        X(smtp_tls_verify_cert_match, STRING, "hostname", 0, 0, "smtp",                                      \
          "The names a server certificate must hold at verify: hostname (the MX host), nexthop, "            \
          "dot-nexthop (any subdomain of it) or literal names, separated by colons.")                       \
        X(smtp_tls_secure_cert_match, STRING, "nexthop, dot-nexthop", 0, 0, "smtp",                          \
          "The names a server certificate must hold at secure, as smtp_tls_verify_cert_match.")             \
        X(smtp_tls_policy_maps, STRING, "", 0, 0, "smtp",                                                    \
          "Tables of TLS policy by next-hop domain: a level (none, may, encrypt, verify, secure) and an "    \
          "optional match=name:name... that replaces the cert_match parameter for that destination.") \
        X(smtp_tls_session_cache_database, STRING, "", 0, 0, "smtp",                                         \
          "Accepted, unused: the smtp client keeps its TLS session cache in memory, not in a database (see "  \
          "smtp_tls_session_cache_timeout); the cache is lost when the smtp process exits.")                  \
        X(smtp_tls_session_cache_timeout, TIME, "3600s", 0, 8640000, "smtp",                                 \
          "How long the smtp client keeps a server's TLS session (in memory) to resume it on the next "      \
          "connection; 0: no TLS session cache.")                                                             \
        X(smtp_tls_loglevel, INT, "1", 0, 4, "smtp",                                                         \
          "0: no journal record of each TLS session's protocol and cipher; 1 or more: one record a session "  \
          "(Postfix's default is 0; postbus logs the summary unless told not to).")                           \
        X(smtp_sasl_auth_enable, BOOL, "no", 0, 0, "smtp",                                                   \
          "Authenticate to servers that offer AUTH, with the user:password smtp_sasl_password_maps gives.")   \
        X(smtp_sasl_password_maps, STRING, "", 0, 0, "smtp",                                                  \
          "Tables of user:password by sender (see smtp_sender_dependent_authentication), [host]:port, "      \
          "[host], host:port, host, next hop and domain; readable by the user postbus.")                    \
        X(smtp_sasl_security_options, STRING, "noplaintext, noanonymous", 0, 0, "smtp",                       \
          "SASL mechanism restrictions without TLS: noplaintext forbids PLAIN and LOGIN (no password in clear).") \
        X(smtp_sasl_tls_security_options, STRING, "$smtp_sasl_security_options", 0, 0, "smtp",              \
          "SASL mechanism restrictions over TLS (noanonymous lets PLAIN and LOGIN send the password).")      \
        X(smtp_sasl_mechanism_filter, STRING, "", 0, 0, "smtp",                                               \
          "The server's AUTH mechanisms the smtp client considers (list); empty: all it offers.")          \
        X(smtp_sender_dependent_authentication, BOOL, "no", 0, 0, "smtp",                                     \
          "Look smtp_sasl_password_maps up by sender address and @domain first (sessions kept per sender).") \
        X(smtp_tls_wrappermode, BOOL, "no", 0, 0, "smtp",                                                     \
          "TLS from the connect on (port 465, SMTPS), instead of STARTTLS; the level is at least encrypt.")  \
        X(content_filter, STRING, "", 0, 0, "smtpd pickup qmgr",                                              \
          "transport:[host]:port: every message smtpd (per service: master.cf -o content_filter=) or pickup "\
          "receives goes there after it is queued, instead of to its recipients' routes (the amavis pattern).") \
        X(receive_override_options, STRING, "", 0, 0, "smtpd pickup",                                         \
          "What smtpd (per service: master.cf -o) or pickup leaves out of receiving: no_unknown_recipient_checks, "\
          "no_address_mappings, no_header_body_checks, no_milters (Postfix's; for mail back from a filter).") \
        X(sender_dependent_relayhost_maps, STRING, "", 0, 0, "rewrite",                                       \
          "Tables of relayhost by sender address, then @domain; it replaces relayhost for that sender.")    \
        X(smtpd_tls_loglevel, INT, "1", 0, 4, "smtpd",                                                       \
          "0: no journal record of each client's TLS session; 1 or more: \"TLS connection established\" "    \
          "with protocol and cipher (Postfix's default is 0).")                                              \
        X(smtpd_tls_received_header, BOOL, "no", 0, 0, "smtpd",                                               \
          "yes: the Received header smtpd's mail gets says the TLS protocol and cipher used (\"(using TLSv1.3 " \
          "with cipher ...)\"), as Postfix.")                                                                  \
        X(smtpd_tls_session_cache_database, STRING, "", 0, 0, "smtpd",                                       \
          "Accepted, unused: smtpd keeps no TLS session cache on disk.")                                     \
        X(tls_random_source, STRING, "dev:/dev/urandom", 0, 0, "smtpd",                                      \
          "Accepted, unused: OpenSSL seeds itself from the kernel's random source.")                         \
        X(smtpd_peername_lookup, BOOL, "yes", 0, 0, "smtpd",                                                  \
          "Look the client's name up in DNS before the greeting (PTR, then its A/AAAA must hold the address).") \
        X(unknown_client_reject_code, INT, "450", 400, 599, "smtpd",                                          \
          "Reply code of reject_unknown_client_hostname and _reverse_ (a DNS temporary failure gives 450).")   \
        X(unknown_local_recipient_reject_code, INT, "550", 400, 599, "smtpd", \
          "Reply code for a recipient of $mydestination not in $local_recipient_maps.") \
        X(unknown_virtual_mailbox_reject_code, INT, "550", 400, 599, "smtpd", \
          "Reply code for a recipient of $virtual_mailbox_domains not in $virtual_mailbox_maps.") \
        X(unknown_relay_recipient_reject_code, INT, "550", 400, 599, "smtpd", \
          "Reply code for a recipient of $relay_domains not in $relay_recipient_maps.") \
        X(relay_domains_reject_code, INT, "554", 400, 599, "smtpd", \
          "Reply code of reject_unauth_destination.") \
        X(access_map_reject_code, INT, "554", 400, 599, "smtpd", \
          "Reply code of REJECT in an access(5) table or policy answer.") \
        X(access_map_defer_code, INT, "450", 400, 599, "smtpd", \
          "Reply code of DEFER in an access(5) table or policy answer.") \
        X(reject_code, INT, "554", 400, 599, "smtpd", \
          "Reply code of the reject restriction.") \
        X(defer_code, INT, "450", 400, 599, "smtpd", \
          "Reply code of the defer restriction.") \
        X(invalid_hostname_reject_code, INT, "501", 400, 599, "smtpd", \
          "Reply code of reject_invalid_helo_hostname.") \
        X(non_fqdn_reject_code, INT, "504", 400, 599, "smtpd", \
          "Reply code of reject_non_fqdn_sender, _recipient and _helo_hostname.") \
        X(unknown_address_reject_code, INT, "450", 400, 599, "smtpd", \
          "Reply code of reject_unknown_sender_domain and _recipient_domain (a DNS failure gives 450).") \
        X(nullmx_reject_code, INT, "556", 400, 599, "smtpd", \
          "Reply code of reject_unknown_sender_domain and _recipient_domain for a Null MX domain.") \
        X(maps_rbl_reject_code, INT, "554", 400, 599, "smtpd", \
          "Reply code of reject_rbl_client.") \
        X(default_rbl_reply, STRING,                                                                          \
          "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}",\
          0, 0, "smtpd", "Reply template of a DNS blocklist refusal ($rbl_code, $rbl_domain, $client_address...).")\
        X(rbl_reply_maps, STRING, "", 0, 0, "smtpd",                                                          \
          "Tables of reply templates by blocklist domain, before default_rbl_reply.")                        \
        X(smtpd_sender_login_maps, STRING, "", 0, 0, "smtpd",                                                 \
          "Tables of the SASL login names (comma or space separated) that own a MAIL FROM address.")         \
        X(plaintext_reject_code, INT, "450", 400, 599, "smtpd",                                               \
          "Reply code of reject_plaintext_session (a session without TLS).")                                  \
        X(unknown_hostname_reject_code, INT, "450", 400, 599, "smtpd",                                        \
          "Reply code of reject_unknown_helo_hostname (a HELO name without A, AAAA or MX record).")           \
        X(multi_recipient_bounce_reject_code, INT, "550", 400, 599, "smtpd",                                  \
          "Reply code of reject_multi_recipient_bounce (a null sender with more than one recipient).")       \
        X(smtpd_milters, STRING, "", 0, 0, "smtpd",                                                           \
          "Milters (inet:host:port, unix:/path) that smtpd asks about each SMTP session and message.")       \
        X(non_smtpd_milters, STRING, "", 0, 0, "pickup",                                                      \
          "Milters that pickup asks about each message submitted with sendmail.")                            \
        X(milter_protocol, INT, "6", 2, 6, "smtpd pickup",                                                     \
          "The milter protocol version offered to milters.")                                                 \
        X(milter_default_action, STRING, "tempfail", 0, 0, "smtpd pickup",                                     \
          "What a milter that fails or does not answer in time gives: tempfail, accept, reject, quarantine.") \
        X(milter_connect_timeout, TIME, "30s", 1, 3600, "smtpd pickup",                                        \
          "How long to wait for the connection to a milter and its option negotiation.")                    \
        X(milter_command_timeout, TIME, "30s", 1, 3600, "smtpd pickup",                                        \
          "How long a milter may take to answer a command (connect, HELO, MAIL, RCPT, DATA).")               \
        X(milter_content_timeout, TIME, "300s", 1, 3600, "smtpd pickup",                                       \
          "How long a milter may take to answer a header, the body or the end of the message.")              \
        X(milter_connect_macros, STRING, "j {daemon_name} {daemon_addr} v _", 0, 0, "smtpd pickup",          \
          "Macros sent to milters with the connection.")                                                     \
        X(milter_helo_macros, STRING, "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",   \
          0, 0, "smtpd pickup", "Macros sent to milters with HELO or EHLO.")                                 \
        X(milter_mail_macros, STRING, "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} "   \
          "{mail_mailer}", 0, 0, "smtpd pickup", "Macros sent to milters with MAIL FROM.")                   \
        X(milter_rcpt_macros, STRING, "i {rcpt_addr} {rcpt_host} {rcpt_mailer}", 0, 0, "smtpd pickup",       \
          "Macros sent to milters with RCPT TO.")                                                            \
        X(milter_data_macros, STRING, "i", 0, 0, "smtpd pickup", "Macros sent to milters with DATA.")        \
        X(milter_end_of_header_macros, STRING, "i", 0, 0, "smtpd pickup",                                    \
          "Macros sent to milters at the end of the headers.")                                               \
        X(milter_end_of_data_macros, STRING, "i", 0, 0, "smtpd pickup",                                      \
          "Macros sent to milters at the end of the message.")                                               \
        X(milter_macro_daemon_name, STRING, "$myhostname", 0, 0, "smtpd pickup",                              \
          "The value of the {daemon_name} macro.")                                                           \
        X(milter_macro_v, STRING, "$mail_name", 0, 0, "smtpd pickup",                                         \
          "The value of the v macro (the MTA's name and version).")                                             \
        X(smtpd_policy_service_timeout, TIME, "100s", 1, 86400, "smtpd",                                      \
          "How long one attempt at a check_policy_service request (connect, send, reply) may take.")        \
        X(smtpd_policy_service_max_idle, TIME, "300s", 1, 86400, "smtpd",                                     \
          "An idle connection to a policy service is closed after this long.")                              \
        X(smtpd_policy_service_max_ttl, TIME, "1000s", 1, 604800, "smtpd",                                    \
          "A connection to a policy service is not used again once it is this old.")                       \
        X(smtpd_policy_service_try_limit, INT, "2", 1, 100, "smtpd",                                          \
          "Attempts at a policy service request before smtpd_policy_service_default_action applies.")      \
        X(smtpd_policy_service_retry_delay, TIME, "1s", 0, 3600, "smtpd",                                     \
          "The pause before the next attempt at a policy service request that failed.")                     \
        X(smtpd_policy_service_request_limit, INT, "0", 0, 1000000, "smtpd",                                  \
          "Requests on one connection to a policy service before it is closed; 0: no limit.")               \
        X(smtpd_policy_service_default_action, STRING, "451 4.3.5 Server configuration problem", 0, 0,       \
          "smtpd",                                                                                            \
          "The access(5) action taken when a policy service cannot be asked or gives no valid reply.")      \
        X(smtpd_policy_service_policy_context, STRING, "", 0, 0, "smtpd",                                     \
          "Sent to policy services as policy_context, to tell one use of a service from another.") \
        X(default_verp_delimiters, STRING, "+=", 0, 0, "smtpd cleanup",                                       \
          "The VERP delimiters of mail that asks for VERP without naming them (sendmail -XV, XVERP).")       \
        X(verp_delimiter_filter, STRING, "-=+", 0, 0, "smtpd cleanup sendmail",                              \
          "The characters that may be VERP delimiters, on the sendmail command line and in XVERP=.")          \
        X(authorized_verp_clients, STRING, "", 0, 0, "smtpd",                                                 \
          "Postfix's old name of smtpd_authorized_verp_clients, its default.")                               \
        X(smtpd_authorized_verp_clients, STRING, "$authorized_verp_clients", 0, 0, "smtpd",                   \
          "SMTP clients (CIDR list) that may ask for VERP delivery with MAIL FROM ... XVERP; empty: none.")  \
        X(propagate_unmatched_extensions, STRING, "canonical, virtual", 0, 0, "cleanup local smtp",            \
          "Tables whose match without the address extension copy it into the result (canonical, virtual, "   \
          "alias, forward, include, generic).")                                                             \
        X(expand_owner_alias, BOOL, "no", 0, 0, "local",                                                      \
          "yes: mail through an alias with an owner-alias has the owner-alias's expansion as its sender.")   \
        X(disable_verp_bounces, BOOL, "no", 0, 0, "bounce",                                                   \
          "yes: one bounce for VERP mail, to the sender; no: one per failed recipient, to its VERP sender.")

/* main.cf names that are not C identifiers: the X() entry names the Config field, and
 * CONFIG_PARAM_SPELLING_<field> gives the name main.cf uses, after a "~," that config.c's CONFIG_PARAM_NAME()
 * relies on. */
#define CONFIG_PARAM_SPELLING_double_bounce_notice_recipient ~, "2bounce_notice_recipient"
