// mdev UUIDs with the kernel's grammar (mdev core: uuid_parse of what `create` was given), the
// same as MigrationProtocol's MdevUUID.parse: exactly 36 characters, hex digits of any case and
// dashes at 8, 13, 18 and 23, one optional trailing newline. The shim uses it to pick device
// directories of a mount (a name that is not a UUID is never a device, and never a path).
#include "shim.h"

int shim_parse_uuid(const char *text, size_t len, char out[37]) {
    if (!text || !out) return -1;
    if (len > 0 && text[len - 1] == '\n') len--;
    if (len != 36) return -1;
    for (size_t i = 0; i < 36; i++) {
        char c = text[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return -1;
        } else if (c >= '0' && c <= '9') {
        } else if (c >= 'a' && c <= 'f') {
        } else if (c >= 'A' && c <= 'F') {
            c = (char)(c - 'A' + 'a');
        } else {
            return -1;
        }
        out[i] = c;
    }
    out[36] = '\0';
    return 0;
}
