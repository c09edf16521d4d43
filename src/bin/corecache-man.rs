//! Writes corecache(1), the man page, to stdout: the synopsis and every
//! option come from the same clap definition the server parses
//! (`corecache::config::Args`), so the page cannot drift from the flags;
//! the sections clap knows nothing of (files, signals, exit status,
//! systemd) follow. `scripts/deb.sh` runs it to build the package.
//!
//! Usage: `corecache-man > corecache.1`, then `man -l corecache.1`.

use clap::CommandFactory;
use clap_mangen::Man;
use std::io::Write;

/// Sections after OPTIONS, in roff, saying what the README says of files,
/// signals, systemd and exit statuses.
const EXTRA: &str = r#".SH "CONFIGURATION FILES"
\fB\-\-conf\fR \fIFILE\fR reads flags in the format of Debian's
\fImemcached.conf\fR: one or more flags per line, \fB#\fR starts a comment,
and a line \fBlogfile\fR \fIPATH\fR appends output to \fIPATH\fR.
\fB\-\-config\fR \fIFILE\fR reads a TOML file whose keys are the long flag
names. The command line wins over \fB\-\-config\fR, which wins over
\fB\-\-conf\fR.
.SH SIGNALS
.TP
\fBSIGTERM\fR, \fBSIGINT\fR, \fBSIGUSR1\fR
Stop accepting, answer every request already read, and exit 0.
.TP
\fBSIGHUP\fR
Ignored, so a closed terminal or a log rotation hook cannot empty the cache.
.SH SYSTEMD
Started with \fBNOTIFY_SOCKET\fR set (a \fBType=notify\fR unit), corecache
sends \fBREADY=1\fR once every worker serves, \fBSTATUS=\fR lines,
\fBSTOPPING=1\fR when it stops, and, when \fBWATCHDOG_USEC\fR is set,
\fBWATCHDOG=1\fR while every worker's loop is turning. \fB\-d\fR is then
ignored: systemd follows the process it started.
.SH "EXIT STATUS"
.TP
\fB0\fR
Stopped by a signal or the \fBshutdown\fR command.
.TP
\fB64\fR
A bad flag or value, or started as root without \fB\-u\fR.
.TP
\fB67\fR
\fB\-u\fR names no user.
.TP
\fB71\fR
A port or socket could not be bound, or the system refused a limit.
.SH FILES
.TP
\fI/etc/corecache.conf\fR
The flags of the packaged service (\fIcorecache.service\fR).
.TP
\fI/usr/share/corecache/\fR
Prometheus alert rules, a Grafana dashboard, and the host tuning sysctls.
.SH "SEE ALSO"
\fBmemcached\fR(1), \fBsystemd.service\fR(5), \fBsd_notify\fR(3)
"#;

fn main() -> std::io::Result<()> {
    let cmd = corecache::config::Args::command()
        .version(env!("CARGO_PKG_VERSION"))
        .long_about(
            "corecache is a memcached-compatible cache for Linux: one pinned \
             worker thread per core, each with its own io_uring and its own \
             shard of a segment store. memcached clients (text, meta and \
             binary protocols) work unchanged. Every memcached 1.6 flag is \
             accepted; those for machinery corecache lacks start the server \
             with one warning line naming them.",
        );
    let man = Man::new(cmd);
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    out.extend_from_slice(EXTRA.as_bytes());
    man.render_version_section(&mut out)?;
    std::io::stdout().write_all(&out)
}
