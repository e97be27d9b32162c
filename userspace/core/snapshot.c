/* snapshot.c: owning, copying and searching snapshots (snapshot.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"

void ls_snapshot_free(struct ls_snapshot *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->ntargets; i++)
		free(s->targets[i].loops);
	free(s->targets);
	memset(s, 0, sizeof(*s));
}

int ls_snapshot_copy(struct ls_snapshot *dst, const struct ls_snapshot *src)
{
	struct ls_snapshot tmp = *src;

	tmp.targets = NULL;
	tmp.ntargets = 0;
	if (src->ntargets) {
		tmp.targets = calloc(src->ntargets, sizeof(*tmp.targets));
		if (!tmp.targets)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < src->ntargets; i++) {
		const struct ls_target_snapshot *t = &src->targets[i];

		tmp.targets[i] = *t;
		tmp.targets[i].loops = NULL;
		tmp.ntargets = i + 1;
		if (t->nloops) {
			tmp.targets[i].loops = malloc(sizeof(*t->loops) * t->nloops);
			if (!tmp.targets[i].loops) {
				tmp.targets[i].nloops = 0;
				ls_snapshot_free(&tmp);
				return -ENOMEM;
			}
			memcpy(tmp.targets[i].loops, t->loops, sizeof(*t->loops) * t->nloops);
		}
	}
	*dst = tmp;
	return 0;
}

const char *ls_note_item(const char *note, const char *prefix, char *buf, size_t len)
{
	size_t plen = strlen(prefix);

	for (const char *p = note; p && *p;) {
		const char *end = strstr(p, "; ");
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n >= plen && !strncmp(p, prefix, plen)) {
			snprintf(buf, len, "%.*s", (int)n, p);
			return buf;
		}
		p = end ? end + 2 : NULL;
	}
	return NULL;
}

const struct ls_target_snapshot *ls_snapshot_find(const struct ls_snapshot *s, int32_t pid)
{
	/* The last match: a PID traced twice (exited, then re-added) reports its latest run. */
	for (uint32_t i = s->ntargets; i-- > 0;)
		if (s->targets[i].pid == pid)
			return &s->targets[i];
	return NULL;
}
