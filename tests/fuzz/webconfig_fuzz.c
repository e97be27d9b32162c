/* webconfig_fuzz.c: libFuzzer harness for the --web.config.file parser
 * (wire/webconfig.c: libyaml underneath). Whatever it accepts must be consistent:
 * TLS only with both files, users with bcrypt hashes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "webconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ls_webconfig wc;
	char *text = malloc(size ? size : 1), err[512];

	if (!text)
		return 0;
	memcpy(text, data, size);
	if (ls_webconfig_parse(text, size, "/etc/loopscope", &wc, err, sizeof(err)) == 0) {
		if (wc.tls && (!wc.cert_file[0] || !wc.key_file[0]))
			abort();
		for (int i = 0; i < wc.nusers; i++)
			if (strncmp(wc.users[i].hash, "$2", 2))
				abort();
	} else if (!err[0]) {
		abort();	/* every refusal says why */
	}
	free(text);
	return 0;
}
