# The remote side of a rank, in Perl: the same contract as watchdog.py, at a tenth of its cost.
#
# Sent as the source of `perl -e` (perl-base is part of every Debian/Ubuntu and Amazon Linux
# image; hosts without perl get watchdog.py). Core built-ins only, no modules: it starts in
# about 2 ms where `python3 -I -S` with os/signal/ctypes takes 15-20 ms, and at 64 hosts that
# difference is most of a second of a 2-core launch.
#
# It forks the rank into its own session (setsid: pgid == pid), waits until the child has
# exec'd (a close-on-exec pipe: the group exists before anyone is told its id), records the pgid
# in <ctl>/<name>.pgid for `dlcfn cancel`, reports it on stderr, and kills the whole process
# group (TERM, then KILL after the grace period) when its stdin reaches EOF: the controller
# closed the channel, the link died, or this host's sshd was killed. When the rank exits by
# itself, stragglers left in its group are killed too. It is the child subreaper of the rank's
# processes, so orphans are reaped at once (a zombie counts as "still running").
#
# The rank's exit is noticed through a pidfd (Linux 5.3+) in the same select() as stdin, so no
# signal can slip between a check and the wait; without pidfds it polls every 50 ms.
#
# Exit status: the rank's, or 128 + N when signal N killed it (reported on stderr as well).
# Before that it does, in the same process, what the shell would otherwise need five programs
# for (JobLayout.shell_prepare, JobLayout.rank): on a host's first rank, PREP = SIZE:GZIP:PROBE makes
# the job dirs, unpacks the next SIZE bytes of stdin (a tar, gzipped when GZIP is 1) into WORK
# with one tar, and reports "dlcfn-prepared CPUS perl [PORT]" on stderr (CPUS from the affinity
# mask, as nproc; a free port when PROBE is 1); exit 98 when any of it fails. Then (every rank)
# it reads the go line from stdin, whose words are the values of the comma-separated LATE
# variables (exit 97 on EOF: the job was stopped before it started), and runs ARGV in WORK.
#
# usage: perl -e SRC CTL_DIR NAME GRACE_S WORK PREP|- LATE|- ARGV...
# Comment lines (starting with #) are stripped before shipping; keep code off them.

my ($ctl, $name, $grace, $work, $prep, $late, @argv) = @ARGV;

# Syscall numbers by ELF machine of this perl: x86_64 (62) and aarch64 (183).
# [setsid, prctl, pidfd_open, sched_getaffinity]
my %NR = (62 => [112, 157, 434, 204], 183 => [157, 167, 434, 123]);
my ($nr_setsid, $nr_prctl, $nr_pidfd, $nr_affinity);
if (open(my $exe, '<', '/proc/self/exe')) {
    binmode $exe;
    my $head = '';
    if (read($exe, $head, 20) == 20) {
        ($nr_setsid, $nr_prctl, $nr_pidfd, $nr_affinity) = @{ $NR{ unpack('v', substr($head, 18, 2)) } || [] };
    }
    close $exe;
}

sub fail_prepare {
    syswrite(STDERR, "dlcfn-prepare: $_[0]\n");
    exit 98;
}

sub make_dir {    # mkdir -p
    my $path = '';
    for my $part (split m{/}, $_[0]) {
        $path .= "$part/";
        mkdir $path if $part ne '';
    }
    -d $_[0] or fail_prepare("cannot create directory $_[0]: $!");
}

sub cpu_count {    # the affinity mask, like nproc; /proc/cpuinfo when the syscall is unknown
    if ($nr_affinity) {
        my $mask = "\0" x 1024;
        my $got = syscall($nr_affinity, 0, length $mask, $mask);
        return unpack('%32b*', substr($mask, 0, $got)) if $got > 0;
    }
    open(my $info, '<', '/proc/cpuinfo') or return 1;
    my $n = grep { /^processor\s*:/ } <$info>;
    return $n || 1;
}

sub free_port {    # bind port 0 on INADDR_ANY (AF_INET 2, SOCK_STREAM 1) and read the port back
    socket(my $sock, 2, 1, 0) or return '';
    bind($sock, pack('S n N x8', 2, 0, 0)) or return '';
    my $addr = getsockname($sock) or return '';
    return unpack('x2 n', $addr);
}

sub read_exactly {    # the next $_[0] bytes of stdin (fewer at EOF)
    my ($want, $data) = ($_[0], '');
    while (length($data) < $want) {
        my $got = sysread(STDIN, $data, $want - length($data), length $data);
        next if !defined $got && ($! + 0) == 4;
        last unless $got;
    }
    return $data;
}

sub untar {    # a simple ustar (Archive.simple: files and dirs only) into $_[1]; '' or what is wrong
    my ($tar, $dest) = @_;
    my ($at, $end, @dirs) = (0, 0);
    while ($at + 512 <= length $tar) {
        my $head = substr($tar, $at, 512);
        $end = 1, last if $head !~ /[^\0]/;    # the end-of-archive block
        my ($name, $mode, $size, $mtime, $sum, $type, $prefix) = unpack('Z100 A8 x16 A12 A12 A8 a1 x100 x88 Z155', $head);
        substr($head, 148, 8) = ' ' x 8;
        return "corrupt header at byte $at" if oct($sum) != unpack('%32C*', $head);
        $name = "$prefix/$name" if $prefix ne '';
        $name =~ s{/+$}{};
        return "unsafe path $name" if $name =~ m{^/|(^|/)\.\.(/|$)};
        ($size, $mode) = (oct($size), oct($mode) & 07777);
        my $path = "$dest/$name";
        $at += 512;
        return "truncated at $name" if $at + $size > length $tar;
        if ($type eq '5') {
            make_dir($path);
            push @dirs, [$path, $mode];
        } elsif ($type eq '0' || $type eq "\0") {
            (my $parent = $path) =~ s{/[^/]*$}{};
            make_dir($parent) unless -d $parent;
            open(my $f, '>', $path) or return "cannot write $path: $!";
            binmode $f;
            (print $f substr($tar, $at, $size)) && close($f) or return "cannot write $path: $!";
            chmod $mode, $path;
            utime oct($mtime), oct($mtime), $path;
        } else {
            return "unsupported entry type '$type' ($name)";
        }
        $at += ($size + 511) & ~511;
    }
    chmod $_->[1], $_->[0] for reverse @dirs;    # last: a read-only dir must take its files first
    return $end ? '' : 'truncated';
}

if ($prep ne '-') {
    my ($size, $gzip, $probe, $simple) = split /:/, $prep;
    make_dir($ctl);
    make_dir($work);
    if ($size > 0 && $simple) {
        my $tar = read_exactly($size);
        fail_prepare("the workdir archive ended after " . length($tar) . " of $size bytes") if length($tar) < $size;
        my $err = untar($tar, $work);
        fail_prepare("unpacking the workdir into $work failed: $err") if $err ne '';
    } elsif ($size > 0) {
        pipe(my $tar_r, my $tar_w) or fail_prepare("pipe: $!");
        my $tar = fork;
        fail_prepare("fork: $!") unless defined $tar;
        if ($tar == 0) {
            close $tar_w;
            open(STDIN, '<&', $tar_r);
            open(STDOUT, '>&', \*STDERR);
            exec('tar', $gzip ? '-xzf' : '-xf', '-', '-C', $work) or exit 127;
        }
        close $tar_r;
        local $SIG{PIPE} = 'IGNORE';    # tar gave up: its exit status says so below
        my $left = $size;
        while ($left > 0) {
            my $got = sysread(STDIN, my $buf, $left < 65536 ? $left : 65536);
            next if !defined $got && ($! + 0) == 4;
            last unless $got;
            $left -= $got;
            while (length $buf) {
                my $put = syswrite($tar_w, $buf);
                last unless $put;
                substr($buf, 0, $put) = '';
            }
        }
        close $tar_w;
        waitpid($tar, 0);
        fail_prepare("unpacking the workdir into $work failed (tar exit " . ($? >> 8) . ")") if $? || $left;
    }
    my $port = $probe ? free_port() : '';
    fail_prepare('no free port for the scheduler') if $probe && !$port;
    syswrite(STDERR, "dlcfn-prepared " . cpu_count() . " perl $port\n");
}

# The go line: one word per LATE variable (or just "go").
my $line = '';
while ($line !~ /\n/) {
    my $got = sysread(STDIN, $line, 4096, length $line);
    next if !defined $got && ($! + 0) == 4;
    exit 97 unless $got;
}
if ($late ne '-') {
    my @values = split ' ', $line;
    my @names = split /,/, $late;
    $ENV{ $names[$_] } = $values[$_] for 0 .. $#names;
}
chdir $work or do {
    syswrite(STDERR, "dlcfn-watchdog: cannot enter $work: $!\n");
    exit 127;
};
# PR_SET_CHILD_SUBREAPER; on an unknown machine orphans go to init, as without a watchdog.
syscall($nr_prctl, 36, 1, 0, 0, 0) if $nr_prctl;

# Stop signals set a flag from now on: one landing between the fork and the wait below must not
# kill the supervisor and orphan the rank.
my $stop = 0;
$SIG{$_} = sub { $stop = 1 } for qw(TERM HUP INT);
$SIG{CHLD} = sub { };    # only to interrupt select(); reap() does the work
pipe(my $sync_r, my $sync_w) or die "dlcfn-watchdog: pipe: $!\n";
my $pid = fork;
if (!defined $pid) {
    print STDERR "dlcfn-watchdog: cannot fork: $!\n";
    exit 127;
}
if ($pid == 0) {
    close $sync_r;
    if (!$nr_setsid || syscall($nr_setsid) < 0) {
        setpgrp(0, 0);
    }
    $SIG{$_} = 'DEFAULT' for qw(TERM HUP INT CHLD PIPE);
    open(STDIN, '<', '/dev/null');
    open(STDERR, '>&', \*STDOUT);
    { exec { $argv[0] } @argv; }
    syswrite($sync_w, "$!");
    exit 127;
}
close $sync_w;
my $exec_error = '';
while (1) {    # EOF once the child has exec'd (the pipe is close-on-exec), or its errno
    my $got = sysread($sync_r, $exec_error, 512, length $exec_error);
    last if defined $got ? $got == 0 : ($! + 0) != 4;    # 4: EINTR
}
close $sync_r;

my $status;    # the rank's wait status, once reaped
my $wnohang = 1;

sub reap {
    while ((my $done = waitpid(-1, $wnohang)) > 0) {
        $status = $? if $done == $pid;
    }
}

if ($exec_error ne '') {
    waitpid($pid, 0);
    print STDERR "dlcfn-watchdog: cannot run $argv[0]: $exec_error\n";
    exit 127;
}

my $pgfile = "$ctl/$name.pgid";
if (open(my $f, '>', "$pgfile.tmp")) {
    print $f $pid;
    close $f;
    rename("$pgfile.tmp", $pgfile);
}
syswrite(STDERR, "dlcfn-watchdog pgid=$pid\n");

my $pidfd = $nr_pidfd ? syscall($nr_pidfd, $pid, 0) : -1;
my $timeout = $pidfd >= 0 ? 1 : 0.05;    # with a pidfd, 1 s only guards a stop signal that lands just before select()
my $eof = 0;
reap();
while (!defined $status && !$stop && !$eof) {
    my $rin = '';
    vec($rin, 0, 1) = 1;
    vec($rin, $pidfd, 1) = 1 if $pidfd >= 0;
    my $n = select(my $rout = $rin, undef, undef, $timeout);
    if ($n > 0 && vec($rout, 0, 1)) {
        my $got = sysread(STDIN, my $buf, 65536);
        $eof = 1 if defined $got ? $got == 0 : ($! + 0) != 4;    # 4: EINTR
    }
    reap();
}
$SIG{$_} = 'IGNORE' for qw(TERM HUP INT);
$SIG{CHLD} = 'DEFAULT';
reap();

# TERM the group, KILL it after the grace period; return once nothing of it is left.
# After EOF or a stop signal this stops the rank; after the rank's own exit, its stragglers.
GROUP: for my $step (['TERM', $grace], ['KILL', 5]) {
    my ($sig, $wait) = @$step;
    last unless kill($sig, -$pid);
    for (my $i = 0; $i < $wait * 100; $i++) {
        reap();
        last GROUP unless kill(0, -$pid) || ($! + 0) == 1;    # 1: EPERM, the group is still there
        select(undef, undef, undef, 0.01);
    }
}
if (!defined $status) {    # the rank left its group (setsid/setpgid): it still dies with the job
    kill('KILL', $pid);
    waitpid($pid, 0);
    $status = $?;
}
unlink $pgfile;
if ($status & 127) {
    my $sig = $status & 127;
    syswrite(STDERR, "dlcfn-watchdog signal=$sig\n");
    exit 128 + $sig;
}
exit $status >> 8;
