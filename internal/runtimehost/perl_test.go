package runtimehost_test

import "testing"

// perlCases run a fourth language through the unchanged host: runtimes/testdata holds its
// registry entry and bootstrap, and no Go code knows about Perl.
var perlCases = langCases{
	registry: testRegistry,
	title:    "perl",
	add: `sub handler {
    my ($event, $ctx) = @_;
    return { sum => $event->{a} + $event->{b} };
}
1;
`,
	output: `sub handler {
    my ($event) = @_;
    print "out-$event->{tag}\n";
    print STDERR "err-$event->{tag}\n";
    system("echo native-$event->{tag}");
    return $event->{tag};
}
`,
	raise: `sub helper { die "kaboom\n" }
sub handler { helper(); }
`,
	raiseType: "Error",
	sleep: `use Time::HiRes ();
sub handler { Time::HiRes::sleep($_[0]{ms} / 1000); return "slept"; }
`,
	exit: `sub handler { exit 3 if $_[0]{exit}; return "alive"; }
`,
	bigPrint: `sub handler { print "x" x $_[0]{n}; return $_[0]{n} + 0; }
`,
	syntax: `sub handler {
    my $x = ;
}
`,
	comment:  "#",
	syntaxAt: "handler.pl line 2",
	envProbe: `sub handler {
    return { secret => $ENV{LAMBDA_TEST_SECRET}, db => $ENV{DATABASE_URL},
             lambda => [grep { /^LAMBDA/ } sort keys %ENV], mine => $ENV{MY_VAR} };
}
`,
	isoA: `our $calls = 0;
sub handler {
    $calls++;
    $main::LEAKED = 'from-a';
    open(my $f, '>', "$ENV{TMPDIR}/leak.txt") or die "open: $!";
    print $f 'a';
    close $f;
    return $calls + 0;
}
`,
	isoB: `sub handler {
    return { global => $main::LEAKED, file => (-e "$ENV{TMPDIR}/leak.txt") ? JSON::PP::true : JSON::PP::false };
}
`,
}

func TestFourthLanguagePerl(t *testing.T) {
	t.Parallel()
	runLanguageSuite(t, perlCases)
}
