/* topdraw.h: drawing the `loopscope top` model with ncurses. Reads the model only.
 *
 * The screen is a stack of widgets from a registry table (topdraw.c): each says how many
 * rows it wants and how few it can live with; when the terminal is short, flexible
 * widgets shrink first, then the least important ones are left out, so every size from
 * 80x24 up shows a whole screen.
 */
#ifndef LS_TOPDRAW_H
#define LS_TOPDRAW_H

#include <curses.h>

#include "topmodel.h"

struct top_draw_ctx {
	int color;	/* use colour pairs (else bold/reverse only) */
	int utf8;	/* block characters for bars and the sparkline (else ASCII) */
};

/* Set up colour pairs when ctx->color (call once after initscr/newterm). */
void top_draw_init(struct top_draw_ctx *ctx);
/* Erase w and draw the whole model into it; the caller refreshes (wnoutrefresh + doupdate). */
void top_draw(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *ctx);

#endif
