/* fuzz-virtual-values.c: what an administrator's tables give the virtual role: a virtual_mailbox_maps value
 * as a mailbox path (never out of the base), a uid or gid value, and virtual_mailbox_lock text; each result
 * checked against what the parsers promise. */
#include "../../src/virtual/virtual.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text = strndup((const char *) data, size);
        char *path = NULL;
        unsigned long id;
        MailboxLocking l = {};

        if (!text)
                return 0;
        if (virtual_mailbox_path("/base", text, &path) >= 0) {
                CHECK(strncmp(path, "/base/", 6) == 0);
                CHECK(path[6] != '\0' && path[6] != '/');
                CHECK(!strstr(path, "/../") && strcmp(path + strlen(path) - 3, "/..") != 0);
                CHECK(!strchr(path, '\n'));
                free(path);
        }
        if (virtual_parse_id(text, &id) >= 0)
                CHECK(id <= (unsigned long) INT32_MAX);
        if (mailbox_lock_parse(text, &l) >= 0)
                CHECK(!(l.no_dotlock && l.no_fcntl));
        free(text);
        return 0;
}
