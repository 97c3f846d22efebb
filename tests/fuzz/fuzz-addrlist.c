/* fuzz-addrlist.c: cleanup's RFC 5322 address-list parser over arbitrary header values: it ends,
 * respects its limit, and every address it returns stands within the input. */
#include "addrlist.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        AddressItem *l = NULL;
        int n;

        if (size > 65536)
                return 0;
        n = addrlist_parse((const char *) data, size, 64, &l);
        CHECK(n >= 0 || n == -E2BIG);
        for (int i = 0; i < n; i++) {
                CHECK(l[i].start < l[i].end && l[i].end <= size);
                CHECK(l[i].address[0] != '\0');
                CHECK(strlen(l[i].address) <= l[i].end - l[i].start);
        }
        if (n > 0)
                addrlist_free(l, (size_t) n);
        return 0;
}
