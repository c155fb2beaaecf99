#!/usr/bin/perl
# Perl worker bootstrap for the lambda-microservice runtime host (a test fixture: a language
# added with a registry entry and this file only). Frames of a 4-byte big-endian length and
# a JSON document; requests on fd 3, responses on fd 4; hello, init, then invoke frames; the
# host's sentinel on stdout and stderr after every invocation.
use strict;
use warnings;
use Carp ();
use IO::Handle;
use JSON::PP;
use Time::HiRes ();

open(my $in,  '<&=', 3) or die "fd 3: $!";
open(my $out, '>&=', 4) or die "fd 4: $!";
binmode $in;
binmode $out;
STDOUT->autoflush(1);
STDERR->autoflush(1);
my $json = JSON::PP->new->utf8->allow_nonref->allow_blessed->convert_blessed;

sub read_exact {
    my ($n) = @_;
    my $buf = '';
    while (length($buf) < $n) {
        my $r = sysread($in, $buf, $n - length($buf), length($buf));
        POSIX::_exit(0) if !$r;
    }
    return $buf;
}

sub read_frame {
    my $n = unpack('N', read_exact(4));
    return $json->decode(read_exact($n));
}

sub write_all {
    my ($fh, $data) = @_;
    while (length $data) {
        my $w = syswrite($fh, $data);
        die "write: $!" unless defined $w;
        substr($data, 0, $w) = '';
    }
}

sub write_frame {
    my $body = $json->encode($_[0]);
    write_all($out, pack('N', length $body) . $body);
}

sub clean_stack {
    my ($trace) = @_;
    return join "\n", grep { !/bootstrap\.pl/ } split /\n/, ($trace // '');
}

require POSIX;
write_frame({ type => 'hello', pid => $$ });
my $init = read_frame();
POSIX::_exit(70) unless $init->{type} eq 'init';
$ENV{$_} = $init->{env}{$_} for keys %{ $init->{env} || {} };
my $sentinel = $init->{sentinel};

sub end_output {
    write_all(\*STDOUT, $sentinel);
    write_all(\*STDERR, $sentinel);
}

my $trace;
{
    local $SIG{__DIE__} = sub { $trace = Carp::longmess($_[0]) };
    my $ok = do $init->{source};
    if ($@) {
        end_output();
        write_frame({ type => 'init_error', compile => JSON::PP::false,
            error => { type => 'Error', message => "$@", stack => clean_stack($trace) } });
        POSIX::_exit(0);
    }
}
if (!defined &main::handler) {
    end_output();
    write_frame({ type => 'init_error', compile => JSON::PP::false,
        error => { type => 'HandlerNotFound', message => 'the script defines no sub handler', stack => '' } });
    POSIX::_exit(0);
}
write_frame({ type => 'ready' });

while (1) {
    my $req = read_frame();
    my $ctx = {
        execution_id => $req->{execution_id}, function => $init->{function},
        version => $init->{version}, deadline_ms => $req->{deadline_ms}, memory_mb => $init->{memory_mb},
    };
    $trace = undef;
    my $result = eval {
        local $SIG{__DIE__} = sub { $trace = Carp::longmess($_[0]) };
        main::handler($req->{event}, $ctx);
    };
    my $doc;
    if (my $err = $@) {
        chomp(my $message = "$err");
        $doc = { type => 'result', status => 'failed',
            error => { type => 'Error', message => $message, stack => clean_stack($trace) } };
    } else {
        $doc = { type => 'result', status => 'succeeded', result => $result };
    }
    end_output();
    write_frame($doc);
}
