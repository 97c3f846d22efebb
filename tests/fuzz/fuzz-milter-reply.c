/* fuzz-milter-reply.c: the milter client's reply reader (milter-proto.c) over arbitrary bytes from a milter:
 * framing stays within the input and its limit, and a parsed reply's strings and data lie within the packet;
 * every change it accepts is applied to a small message without breaking the message's bounds. */
#include "fuzz.h"
#include "milter-message.h"
#include "milter-proto.h"

static bool within(const void *p, const uint8_t *pkt, size_t len) {
        return !p || ((const uint8_t *) p >= pkt && (const uint8_t *) p < pkt + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char text[] = "From: a@example.org\nSubject: hi\n there\n\nbody\n";
        MilterMessage m;
        size_t off = 0;

        CHECK(milter_message_parse(text, sizeof text - 1, 4096, &m) == 0);
        while (off < size) {
                MilterReply r;
                size_t n;
                int k = milter_packet_frame(data + off, size - off, 4096, &n);

                if (k <= 0)
                        break;
                CHECK(n >= 5 && n <= size - off && n <= 4096 + 4);
                if (milter_reply_parse(data + off + 4, n - 4, &r) == 0) {
                        const uint8_t *pkt = data + off + 4;

                        CHECK(r.type >= 0 && r.type < _MILTER_REPLY_TYPE_MAX);
                        CHECK(within(r.name, pkt, n - 4) && within(r.text, pkt, n - 4) && within(r.args, pkt, n - 4));
                        CHECK(!r.data || (r.data >= pkt && r.data + r.len <= pkt + n - 4));
                        if (r.type == MILTER_REPLY_REPLYCODE)
                                CHECK(r.text[0] == '4' || r.text[0] == '5');
                        if (milter_message_apply(&m, &r) == 0)
                                CHECK(m.size <= m.size_max);
                }
                off += n;
        }
        if (milter_message_commit(&m) == 0)
                CHECK(m.size <= m.size_max);
        milter_message_done(&m);
        return 0;
}
