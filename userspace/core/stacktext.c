/* stacktext.c: a stack set as text lines (stat, top's stack pane). */
#include <stdio.h>
#include <string.h>

#include "stacktab.h"

static const char *base(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;

	return s ? s + 1 : path;
}

static void frame_text(const struct ls_frame *f, int width, char *out, size_t len)
{
	char where[256] = "";

	if (f->kind == LS_FRAME_JS) {
		if (f->file && f->line)
			snprintf(where, sizeof(where), "%s:%u", f->file, f->line);
		else if (f->file)
			snprintf(where, sizeof(where), "%s", f->file);
		else if (f->module)
			snprintf(where, sizeof(where), "%s", f->module);
		snprintf(out, len, "%-*s  %s", width, f->function, where);
	} else {
		if (f->file && f->line)
			snprintf(where, sizeof(where), "  %s:%u", f->file, f->line);
		snprintf(out, len, "[%s] %s%s  (%s)", f->kind == LS_FRAME_KERNEL ? "kernel" : "native", f->function, where,
			 f->module ? base(f->module) : "?");
	}
	/* trim the padding of a frame with nothing after its name */
	for (size_t n = strlen(out); n && out[n - 1] == ' '; n--)
		out[n - 1] = 0;
}

#define NATIVE_KEPT 4

size_t ls_stack_text(const struct ls_stack_set *set, uint32_t max_stacks, uint32_t max_lines_per_stack,
		     char (*lines)[LS_STACK_LINE], size_t max_lines)
{
	size_t nl = 0;

	for (uint32_t s = 0; set && s < set->nstacks && s < max_stacks && nl < max_lines; s++) {
		const struct ls_stack_sample *st = &set->stacks[s];
		int width = 0, has_js = 0;
		uint32_t shown = 0, skipped = 0, natives = 0;

		for (uint32_t i = 0; i < st->nframes; i++)
			if (st->frames[i].kind == LS_FRAME_JS) {
				has_js = 1;
				if ((int)strlen(st->frames[i].function) > width)
					width = (int)strlen(st->frames[i].function);
			}
		if (width > 40)
			width = 40;
		for (uint32_t i = 0; i < st->nframes && nl < max_lines; i++) {
			const struct ls_frame *f = &st->frames[i];
			char text[LS_STACK_LINE - 16];	/* room for the share or the indent */
			/* keep the two frames next to each JS frame, the leaf, and JS frames;
			 * a long native run between them shows as a count. A stack with no JS
			 * (a C loop) keeps its first NATIVE_KEPT user frames: past libc's and
			 * the vDSO's leaves, the program's own functions. */
			int keep = f->kind == LS_FRAME_JS || i < 2 || (i + 1 < st->nframes && st->frames[i + 1].kind == LS_FRAME_JS) ||
				   (i > 0 && st->frames[i - 1].kind == LS_FRAME_JS) ||
				   (!has_js && f->kind == LS_FRAME_NATIVE && natives < NATIVE_KEPT);

			natives += f->kind == LS_FRAME_NATIVE;

			if (!keep) {
				skipped++;
				continue;
			}
			if (skipped) {
				snprintf(lines[nl++], LS_STACK_LINE, "       ... %u native frame%s", skipped,
					 skipped == 1 ? "" : "s");
				skipped = 0;
				if (nl >= max_lines)
					break;
			}
			if (shown == max_lines_per_stack) {
				snprintf(lines[nl++], LS_STACK_LINE, "       ... %u more frames", st->nframes - i);
				break;
			}
			frame_text(f, width, text, sizeof(text));
			if (shown == 0)
				snprintf(lines[nl++], LS_STACK_LINE, "%4.0f%%  %s",
					 set->total ? 100.0 * (double)(st->count > set->total ? set->total : st->count) /
							      (double)set->total : 0.0, text);
			else
				snprintf(lines[nl++], LS_STACK_LINE, "       %s", text);
			shown++;
		}
		if (skipped && nl < max_lines)
			snprintf(lines[nl++], LS_STACK_LINE, "       ... %u native frame%s", skipped, skipped == 1 ? "" : "s");
	}
	return nl;
}
