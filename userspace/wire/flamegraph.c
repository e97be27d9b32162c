/* flamegraph.c: a self-contained SVG flame graph of sampled stacks.
 *
 * The picture is static SVG (any viewer shows it); a short inline script adds what a
 * browser can do: details on hover, click to zoom, search (Ctrl-F, or "?s=REGEX" in
 * the URL). No external resource of any kind. Frames are merged by (parent, kind,
 * name, module), children sorted by name, so the output depends only on the input.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "profile_out.h"

#define IMG_W 1200.0
#define XPAD 10.0
#define FRAMES_W (IMG_W - 2 * XPAD)
#define FRAME_H 16
#define TOP 56
#define FONT_PX 12
#define CHAR_W (0.59 * FONT_PX)	/* average glyph width of Verdana at FONT_PX */
#define MIN_W 0.1		/* frames narrower than this (px) are left out */

enum { KIND_ROOT = 3 };

struct node {
	uint32_t parent;
	uint32_t depth;
	int kind;		/* enum ls_frame_kind or KIND_ROOT */
	uint64_t total;		/* samples in this frame and below (saturating) */
	double x;		/* left edge, in samples from the left of the graph */
	const struct ls_frame *frame;	/* the first frame merged here, for the tooltip */
};

/* A node's key: parent id (4 bytes), kind (1 byte), cleaned label, NUL, module. */
struct graph {
	struct __ls_intern keys;	/* node id -> key */
	struct node *nodes;
	size_t cap;
};

static const char *key_label(const struct graph *g, size_t id)
{
	size_t len;

	return __ls_intern_key(&g->keys, id, &len) + 5;
}

static long graph_node(struct graph *g, uint32_t parent, int kind, const struct ls_frame *f,
		       struct ls_buf *key)
{
	unsigned char head[5] = { parent, parent >> 8, parent >> 16, parent >> 24, (unsigned char)kind };
	int added;
	long id;

	ls_buf_reset(key);
	ls_buf_append(key, head, sizeof(head));
	if (f)
		__ls_prof_label(key, f, __LS_CLEAN_TEXT);
	else
		ls_buf_puts(key, kind == KIND_ROOT ? "all" : "[no frames]");
	ls_buf_append(key, "", 1);
	if (f && f->kind != LS_FRAME_JS)
		__ls_prof_clean(key, f->module, __LS_CLEAN_TEXT);
	if (key->oom)
		return -ENOMEM;
	id = __ls_intern(&g->keys, key->p, key->len, &added);
	if (id < 0 || !added)
		return id;
	if (__ls_prof_grow(&g->nodes, &g->cap, (size_t)id + 1, sizeof(*g->nodes)))
		return -ENOMEM;
	g->nodes[id] = (struct node){
		.parent = parent,
		.depth = id ? g->nodes[parent].depth + 1 : 0,
		.kind = kind,
		.frame = f,
	};
	return id;
}

static int graph_build(struct graph *g, const struct ls_stack_sample *s, size_t n)
{
	struct ls_buf key = { 0 };
	long id;
	int err = 0;

	id = graph_node(g, 0, KIND_ROOT, NULL, &key);
	if (id < 0) {
		err = (int)id;
		goto cleanup;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t parent = 0;

		if (!s[i].count)
			continue;
		g->nodes[0].total = __ls_sat_add(g->nodes[0].total, s[i].count);
		for (uint32_t k = s[i].nframes; k-- > 0;) {
			const struct ls_frame *f = &s[i].frames[k];

			id = graph_node(g, parent, (int)f->kind, f, &key);
			if (id < 0) {
				err = (int)id;
				goto cleanup;
			}
			parent = (uint32_t)id;
			g->nodes[id].total = __ls_sat_add(g->nodes[id].total, s[i].count);
		}
		if (!s[i].nframes) {
			id = graph_node(g, 0, LS_FRAME_NATIVE, NULL, &key);
			if (id < 0) {
				err = (int)id;
				goto cleanup;
			}
			g->nodes[id].total = __ls_sat_add(g->nodes[id].total, s[i].count);
		}
	}
cleanup:
	ls_buf_free(&key);
	return err;
}

static const struct graph *sort_graph;

/* Siblings together (by parent id), each family by label, kind, module. */
static int cmp_node(const void *a, const void *b)
{
	const struct graph *g = sort_graph;
	uint32_t ia = *(const uint32_t *)a, ib = *(const uint32_t *)b;
	const struct node *na = &g->nodes[ia], *nb = &g->nodes[ib];
	size_t la, lb;
	const char *ka, *kb;
	int c;

	if (na->parent != nb->parent)
		return na->parent < nb->parent ? -1 : 1;
	c = strcmp(key_label(g, ia), key_label(g, ib));
	if (c)
		return c;
	if (na->kind != nb->kind)
		return na->kind < nb->kind ? -1 : 1;
	ka = __ls_intern_key(&g->keys, ia, &la);
	kb = __ls_intern_key(&g->keys, ib, &lb);
	c = memcmp(ka, kb, la < lb ? la : lb);
	return c ? c : (la > lb) - (la < lb);
}

static void xml_escape(struct ls_buf *b, const char *s, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		const char *rep;

		switch (s[i]) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default: continue;
		}
		ls_buf_append(b, s + start, i - start);
		ls_buf_puts(b, rep);
		start = i + 1;
	}
	ls_buf_append(b, s + start, len - start);
}

static void xml_puts(struct ls_buf *b, const char *s)
{
	xml_escape(b, s, strlen(s));
}

/* The label as it fits in w px: whole, cut to "abc..", or nothing. Counts code points
 * (the label is valid UTF-8), so a cut never splits a character. */
static void fit_label(struct ls_buf *b, const char *s, double w)
{
	long room = (long)((w - 6) / CHAR_W);
	long cps = 0;
	size_t cut = 0, i;

	if (room < 3)
		return;
	for (i = 0; s[i]; i++) {
		if (((unsigned char)s[i] & 0xc0) == 0x80)
			continue;
		if (cps == room - 2)
			cut = i;
		cps++;
	}
	if (cps <= room) {
		xml_escape(b, s, i);
		return;
	}
	xml_escape(b, s, cut);
	ls_buf_puts(b, "..");
}

static void fill(struct ls_buf *b, int kind, const char *label)
{
	uint32_t h = __ls_prof_hash(label, strlen(label));
	double v1 = (h & 0xff) / 255.0, v2 = ((h >> 8) & 0xff) / 255.0, v3 = ((h >> 16) & 0xff) / 255.0;
	int r, g, bl;

	switch (kind) {
	case LS_FRAME_JS:	/* greens */
		r = 50 + (int)(v1 * 90), g = 180 + (int)(v2 * 60), bl = 40 + (int)(v3 * 50);
		break;
	case LS_FRAME_KERNEL:	/* blues */
		r = 60 + (int)(v1 * 60), g = 140 + (int)(v2 * 60), bl = 210 + (int)(v3 * 45);
		break;
	case KIND_ROOT:
		r = g = bl = 200;
		break;
	default:		/* native: reds to yellows */
		r = 205 + (int)(v1 * 50), g = (int)(v2 * 200), bl = (int)(v3 * 55);
		break;
	}
	ls_buf_printf(b, "rgb(%d,%d,%d)", r, g, bl);
}

/* "1 ms", "250 us", "10.5 s" */
static void put_duration(struct ls_buf *b, uint64_t ns)
{
	if (ns < 1000)
		ls_buf_printf(b, "%u ns", (unsigned)ns);
	else if (ns < 1000000)
		ls_buf_printf(b, "%.3g us", (double)ns / 1e3);
	else if (ns < 1000000000)
		ls_buf_printf(b, "%.3g ms", (double)ns / 1e6);
	else
		ls_buf_printf(b, "%.3g s", (double)ns / 1e9);
}

static const char *const kind_names[] = {
	[LS_FRAME_JS] = "JS", [LS_FRAME_NATIVE] = "native", [LS_FRAME_KERNEL] = "kernel",
};

/* Tooltip: the label, then what else is known of the frame, then its share. */
static void put_title(struct ls_buf *b, const struct graph *g, uint32_t id)
{
	const struct node *nd = &g->nodes[id];
	const struct ls_frame *f = nd->frame;
	uint64_t all = g->nodes[0].total;

	ls_buf_puts(b, "<title>");
	xml_puts(b, key_label(g, id));
	if (nd->kind != KIND_ROOT) {
		size_t len;
		const char *k = __ls_intern_key(&g->keys, id, &len);
		const char *mod = key_label(g, id) + strlen(key_label(g, id)) + 1;

		ls_buf_printf(b, "\n%s frame", kind_names[nd->kind]);
		if (mod < k + len) {
			ls_buf_puts(b, " in ");
			xml_escape(b, mod, (size_t)(k + len - mod));
		}
		if (f && f->kind == LS_FRAME_JS && f->file && f->column)
			ls_buf_printf(b, ", column %u", f->column);
	}
	ls_buf_puts(b, "\n");
	ls_buf_u64(b, nd->total);
	ls_buf_printf(b, " sample%s (%.2f%%)</title>", nd->total == 1 ? "" : "s",
		      all ? 100.0 * (double)nd->total / (double)all : 0.0);
}

/* After "var W=<frame area width>,X0=<left pad>,CW=<glyph width>". */
static const char script[] =
	",fr=[],det,zb,sm;\n"
	"function name(g){return g.querySelector(\"title\").textContent.split(\"\\n\")[0];}\n"
	"function num(g,a){return +g.getAttribute(a);}\n"
	"function fit(s,w){var c=Array.from(s),n=Math.floor((w-6)/CW);"
	"if(n<3)return \"\";return c.length<=n?s:c.slice(0,n-2).join(\"\")+\"..\";}\n"
	"function place(g,x,w){var r=g.querySelector(\"rect\"),t=g.querySelector(\"text\");"
	"r.setAttribute(\"x\",(X0+x).toFixed(2));r.setAttribute(\"width\",w.toFixed(2));"
	"t.setAttribute(\"x\",(X0+x+3).toFixed(2));t.textContent=fit(name(g),w);g.style.display=\"\";}\n"
	"function zoom(z){var zx=num(z,\"data-x\"),zw=num(z,\"data-w\"),zd=num(z,\"data-d\"),k=W/zw,e=1e-6;\n"
	" fr.forEach(function(g){var x=num(g,\"data-x\"),w=num(g,\"data-w\"),d=num(g,\"data-d\");\n"
	"  if(d<zd&&x<=zx+e&&x+w>=zx+zw-e){place(g,0,W);g.style.opacity=\"0.6\";}\n"
	"  else if(d>=zd&&x>=zx-e&&x+w<=zx+zw+e){place(g,(x-zx)*k,w*k);g.style.opacity=\"\";}\n"
	"  else g.style.display=\"none\";});\n"
	" zb.style.opacity=\"1\";}\n"
	"function unzoom(){fr.forEach(function(g){place(g,num(g,\"data-x\"),num(g,\"data-w\"));"
	"g.style.opacity=\"\";});zb.style.opacity=\"0\";}\n"
	"function search(re){var r,iv=[],s=0,end=-1;\n"
	" try{r=new RegExp(re);}catch(x){sm.textContent=\"bad regular expression\";return;}\n"
	" fr.forEach(function(g){var rc=g.querySelector(\"rect\"),f=rc.getAttribute(\"data-f\");\n"
	"  if(r.test(name(g))){if(!f)rc.setAttribute(\"data-f\",rc.getAttribute(\"fill\"));"
	"rc.setAttribute(\"fill\",\"rgb(230,0,230)\");iv.push([num(g,\"data-x\"),num(g,\"data-w\")]);}\n"
	"  else if(f){rc.setAttribute(\"fill\",f);rc.removeAttribute(\"data-f\");}});\n"
	" iv.sort(function(a,b){return a[0]-b[0];});\n"
	" iv.forEach(function(v){var a=Math.max(v[0],end),b=v[0]+v[1];if(b>a){s+=b-a;end=b;}});\n"
	" sm.textContent=\"Matched: \"+(100*s/W).toFixed(1)+\"%\";}\n"
	"function clear(){search(\"(?!)\");sm.textContent=\"\";}\n"
	"function ask(){var r=prompt(\"Search (regular expression)\",\"\");if(r)search(r);}\n"
	"fr=Array.prototype.slice.call(document.getElementsByClassName(\"f\"));\n"
	"det=document.getElementById(\"details\");zb=document.getElementById(\"unzoom\");"
	"sm=document.getElementById(\"matched\");\n"
	"fr.forEach(function(g){g.addEventListener(\"click\",function(){zoom(g);});\n"
	" g.addEventListener(\"mouseover\",function(){"
	"det.textContent=g.querySelector(\"title\").textContent.replace(/\\n/g,\"  |  \");});\n"
	" g.addEventListener(\"mouseout\",function(){det.textContent=\" \";});});\n"
	"zb.addEventListener(\"click\",unzoom);\n"
	"document.getElementById(\"search\").addEventListener(\"click\",function(){"
	"if(sm.textContent)clear();else ask();});\n"
	"document.addEventListener(\"keydown\",function(e){\n"
	" if((e.ctrlKey||e.metaKey)&&e.key===\"f\"){e.preventDefault();ask();}\n"
	" else if(e.key===\"Escape\"){unzoom();clear();}});\n"
	"var q=new URLSearchParams(location.search).get(\"s\");if(q)search(q);\n"
	"})();\n]]></script>\n";

static void put_header(struct ls_buf *b, const struct ls_profile_meta *m, uint64_t total, int height)
{
	ls_buf_printf(b,
		      "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"
		      "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		      "viewBox=\"0 0 %d %d\">\n"
		      "<style>text{font-family:Verdana,sans-serif;font-size:%dpx;fill:#000}"
		      "g.f{cursor:pointer}g.f:hover rect{stroke:#000;stroke-width:0.5}"
		      "#unzoom,#search{cursor:pointer}#title{font-size:17px}</style>\n"
		      "<rect width=\"100%%\" height=\"100%%\" fill=\"rgb(248,248,244)\"/>\n",
		      (int)IMG_W, height, (int)IMG_W, height, FONT_PX);
	ls_buf_printf(b, "<text id=\"title\" x=\"%d\" y=\"24\" text-anchor=\"middle\">Flame graph", (int)(IMG_W / 2));
	if (m->pid) {
		ls_buf_printf(b, " of PID %d", m->pid);
		if (m->comm && *m->comm) {
			struct ls_buf c = { 0 };

			__ls_prof_clean(&c, m->comm, __LS_CLEAN_TEXT);
			ls_buf_puts(b, " (");
			xml_escape(b, c.p ? c.p : "", c.len);
			ls_buf_puts(b, ")");
			b->oom |= c.oom;
			ls_buf_free(&c);
		}
	}
	ls_buf_printf(b, "</text>\n<text x=\"%d\" y=\"42\" text-anchor=\"middle\">", (int)(IMG_W / 2));
	ls_buf_u64(b, total);
	ls_buf_printf(b, " sample%s", total == 1 ? "" : "s");
	if (m->period_ns) {
		ls_buf_puts(b, ", one every ");
		put_duration(b, m->period_ns);
	}
	if (m->duration_ns) {
		ls_buf_puts(b, ", over ");
		put_duration(b, m->duration_ns);
	}
	ls_buf_puts(b, "</text>\n"
		       "<text id=\"unzoom\" x=\"10\" y=\"42\" style=\"opacity:0\">Reset Zoom</text>\n");
	ls_buf_printf(b, "<text id=\"search\" x=\"%d\" y=\"42\" text-anchor=\"end\">Search</text>\n",
		      (int)(IMG_W - XPAD));
}

static void put_footer(struct ls_buf *b, int y)
{
	static const int kinds[] = { LS_FRAME_JS, LS_FRAME_NATIVE, LS_FRAME_KERNEL };

	ls_buf_printf(b, "<text id=\"details\" x=\"10\" y=\"%d\"> </text>\n", y);
	ls_buf_printf(b, "<text id=\"matched\" x=\"%d\" y=\"%d\" text-anchor=\"end\"></text>\n",
		      (int)(IMG_W - XPAD), y);
	for (int i = 0; i < 3; i++) {
		int x = 10 + i * 90;

		ls_buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"", x, y + 8);
		/* The colour of a frame named after its kind. */
		fill(b, kinds[i], kind_names[kinds[i]]);
		ls_buf_printf(b, "\"/><text x=\"%d\" y=\"%d\">%s</text>\n", x + 16, y + 18, kind_names[kinds[i]]);
	}
}

int ls_profile_svg(const struct ls_stack_sample *s, size_t n, const struct ls_profile_meta *meta,
		   struct ls_buf *out)
{
	struct graph g = { 0 };
	uint32_t *order = NULL, *first = NULL, *nkids = NULL, *stack = NULL;
	double *cursor = NULL;
	size_t depth = 0;
	uint64_t all;
	uint32_t maxdepth = 0;
	size_t nn;
	int err, height, base;

	if (!meta)
		meta = &ls_profile_meta_none;

	err = graph_build(&g, s, n);
	if (err)
		goto cleanup;
	nn = g.keys.n;
	all = g.nodes[0].total;
	order = malloc(nn * sizeof(*order));
	cursor = calloc(nn, sizeof(*cursor));
	first = calloc(nn, sizeof(*first));
	nkids = calloc(nn, sizeof(*nkids));
	stack = malloc(nn * sizeof(*stack));
	if (!order || !cursor || !first || !nkids || !stack) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < nn - 1; i++)
		order[i] = (uint32_t)i + 1;
	sort_graph = &g;
	qsort(order, nn - 1, sizeof(*order), cmp_node);
	/* A parent's id is below its children's, so its family sorts first and its x is
	 * known when its own children are placed. */
	for (size_t i = 0; i < nn - 1; i++) {
		struct node *nd = &g.nodes[order[i]];

		if (!nkids[nd->parent]++)
			first[nd->parent] = (uint32_t)i;
		nd->x = cursor[nd->parent];
		cursor[nd->parent] += (double)nd->total;
		cursor[order[i]] = nd->x;
		if ((double)nd->total / (double)all * FRAMES_W >= MIN_W && nd->depth > maxdepth)
			maxdepth = nd->depth;
	}

	base = TOP + (int)(maxdepth + 1) * FRAME_H;	/* bottom of the root's row */
	height = base + 48;
	put_header(out, meta, all, height);
	if (!all)
		ls_buf_printf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">No samples</text>\n",
			      (int)(IMG_W / 2), base - 4);
	/* Depth first, children by name: the order of the input leaves no trace. */
	if (all)
		stack[depth++] = 0;
	while (depth) {
		uint32_t id = stack[--depth];
		const struct node *nd = &g.nodes[id];
		double x = nd->x / (double)all * FRAMES_W, w = (double)nd->total / (double)all * FRAMES_W;
		int y = base - (int)(nd->depth + 1) * FRAME_H;

		/* A frame too narrow to draw has no wider child. */
		if (w < MIN_W)
			continue;
		for (uint32_t k = nkids[id]; k-- > 0;)
			stack[depth++] = order[first[id] + k];
		ls_buf_printf(out, "<g class=\"f\" data-x=\"%.2f\" data-w=\"%.2f\" data-d=\"%u\">", x, w, nd->depth);
		put_title(out, &g, id);
		ls_buf_printf(out, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" rx=\"2\" fill=\"",
			      XPAD + x, y, w, FRAME_H - 1);
		fill(out, nd->kind, key_label(&g, id));
		ls_buf_printf(out, "\"/><text x=\"%.2f\" y=\"%d\">", XPAD + x + 3, y + FRAME_H - 4);
		fit_label(out, key_label(&g, id), w);
		ls_buf_puts(out, "</text></g>\n");
	}
	put_footer(out, base + 18);
	/* One function scope: no global of ours shadows the window's (name, clear...). */
	ls_buf_printf(out, "<script type=\"text/ecmascript\"><![CDATA[\n(function(){\n\"use strict\";\n"
		      "var W=%g,X0=%g,CW=%g", FRAMES_W, XPAD, CHAR_W);
	ls_buf_puts(out, script);
	ls_buf_puts(out, "</svg>\n");
	if (out->oom)
		err = -ENOMEM;
cleanup:
	free(stack);
	free(nkids);
	free(first);
	free(cursor);
	free(order);
	free(g.nodes);
	__ls_intern_free(&g.keys);
	return err;
}
