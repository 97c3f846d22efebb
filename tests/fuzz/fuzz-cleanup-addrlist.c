/* fuzz-cleanup-addrlist.c: cleanup's RFC 5322 address-list parser over arbitrary header values: it ends,
 * respects its limit, and every address it returns stands within the input. */
#include "../../src/cleanup/cleanup-addrlist.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        CleanupAddress *l = NULL;
        int n;

        if (size > 65536)
                return 0;
        n = cleanup_addrlist_parse((const char *) data, size, 64, &l);
        CHECK(n >= 0 || n == -E2BIG);
        for (int i = 0; i < n; i++) {
                CHECK(l[i].start < l[i].end && l[i].end <= size);
                CHECK(l[i].address[0] != '\0');
                CHECK(strlen(l[i].address) <= l[i].end - l[i].start);
        }
        if (n > 0)
                cleanup_addrlist_free(l, (size_t) n);
        return 0;
}
