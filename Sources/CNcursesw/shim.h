// The wide-character ncurses API for Swift. SwiftPM drops pkg-config's -D_XOPEN_SOURCE=600, so
// NCURSES_WIDECHAR is set here; macros and C globals that Swift cannot import are wrapped.
#ifndef GRPCTOP_CNCURSESW_SHIM_H
#define GRPCTOP_CNCURSESW_SHIM_H
#define NCURSES_WIDECHAR 1
#define _XOPEN_SOURCE_EXTENDED 1
#include <stdio.h>
#include <stdlib.h>
#include <locale.h>
#include <langinfo.h>
#include <wchar.h>
#include <ncursesw/curses.h>
#include <ncursesw/term.h>

static inline WINDOW *grpctop_stdscr(void) { return stdscr; }
static inline void grpctop_del_curterm(void) { del_curterm(cur_term); }
static inline FILE *grpctop_stdout(void) { return stdout; }
static inline FILE *grpctop_stdin(void) { return stdin; }
static inline int grpctop_color_pair(int n) { return (int)COLOR_PAIR(n); }
static inline int grpctop_colors(void) { return COLORS; }
static inline attr_t grpctop_a_bold(void) { return A_BOLD; }
static inline attr_t grpctop_a_reverse(void) { return A_REVERSE; }
static inline attr_t grpctop_a_underline(void) { return A_UNDERLINE; }
static inline attr_t grpctop_a_dim(void) { return A_DIM; }
static inline attr_t grpctop_a_normal(void) { return A_NORMAL; }
static inline int grpctop_attr_set(attr_t a, short pair) { return attr_set(a, pair, NULL); }
static inline int grpctop_maxy(void) { return getmaxy(stdscr); }
static inline int grpctop_maxx(void) { return getmaxx(stdscr); }
static inline int grpctop_is_utf8(void) {
    const char *cs = nl_langinfo(CODESET);
    return cs != NULL && (strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0);
}
#endif
