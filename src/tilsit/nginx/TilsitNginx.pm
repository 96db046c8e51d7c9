# TilsitNginx: the Perl that tilsit's generated nginx configuration runs (perl_set).
#
# It mirrors tilsit.spec.accept (content negotiation), tilsit.spec.names (PEP 503
# names), packaging's Version normalisation (legacy JSON URLs) and
# tilsit.web.treefiles (ETag and serial of a page). nginx cannot lower-case a string
# or compare q-values by itself; its own static module still sends every byte.
#
# tilsit.nginx.config cuts this file at the "# perl_set part:" lines: each part goes
# verbatim into one single-quoted perl_set handler, which nginx caps at 4 KB and in
# which it rewrites backslash escapes. So a part stays small and holds no single
# quote, no backslash before a quote, n, t, r or backslash (the renderer checks).
# The comment lines outside the parts are free text.
#
# The whole file is also valid Perl on its own: the tests run perl -c on it and
# compare its answers with the Python it mirrors.
# perl_set part: accept

package TilsitNginx;
# Simple API media types, in the order the server prefers them.
our @TYPES = (
    ["json", "application/vnd.pypi.simple.v1+json"],
    ["v1html", "application/vnd.pypi.simple.v1+html"],
    ["html", "text/html"],
);
our %FORMATS = (
    "json" => "json", "html" => "html",
    "application/vnd.pypi.simple.v1+json" => "json",
    "application/vnd.pypi.simple.v1+html" => "v1html",
    "text/html" => "html",
);

sub trim { my ($s) = @_; $s =~ s/^\s+|\s+$//g; return $s; }

# Accept -> [[range, q], ...]; a q that is not a number counts as 0.
sub parse_accept {
    my ($header) = @_;
    my @ranges;
    for my $item (split /,/, $header) {
        my @parts = map { trim($_) } split /;/, $item, -1;
        my $media = lc($parts[0] // "");
        next if $media eq "";
        my $quality = 1;
        for my $param (@parts[1 .. $#parts]) {
            my ($key, $value) = split /=/, $param, 2;
            next if !defined $key || lc(trim($key)) ne "q";
            $value = trim($value // "");
            $quality = $value =~ /^[+-]?(?:[0-9]+[.]?[0-9]*|[.][0-9]+)(?:[eE][+-]?[0-9]+)?$/
                ? $value + 0 : 0;
            $quality = $quality < 0 ? 0 : $quality > 1 ? 1 : $quality;
        }
        push @ranges, [$media, $quality];
    }
    return \@ranges;
}

# (q, specificity) of the most specific range matching a type, or ().
sub quality {
    my ($type, $ranges) = @_;
    my ($major) = $type =~ m{^([^/]*)};
    my ($specificity, $found) = (-1, undef);
    for my $range (@$ranges) {
        my ($media, $q) = @$range;
        my $s = $media eq $type ? 2 : $media eq "$major/*" ? 1 : $media eq "*/*" ? 0 : -1;
        ($specificity, $found) = ($s, $q) if $s > $specificity;
    }
    return defined $found ? ($found, $specificity) : ();
}

# Short name of the type to answer with; "" when none is acceptable (406).
# Highest q, then a type named outright over a wildcard, then the server order,
# reversed for a bare */* (plain HTML, which every client reads).
sub negotiate {
    my ($accept) = @_;
    return "html" if !defined $accept || $accept !~ /\S/;
    my $ranges = parse_accept($accept);
    my ($chosen, @best);
    for my $preference (0 .. $#TYPES) {
        my ($q, $s) = quality($TYPES[$preference][1], $ranges);
        next if !defined $q || $q <= 0;
        my @key = ($q, $s, $s ? -$preference : $preference);
        if (!@best || ($key[0] <=> $best[0] || $key[1] <=> $best[1] || $key[2] <=> $best[2]) > 0) {
            ($chosen, @best) = ($TYPES[$preference][0], @key);
        }
    }
    return $chosen // "";
}

sub unquote_plus {
    my ($s) = @_;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
    return $s;
}

# The first non-blank format= value, decoded as parse_qs decodes it.
sub query_format {
    my ($args) = @_;
    for my $field (split /&/, $args // "") {
        my ($name, $value) = split /=/, $field, 2;
        next if !defined $value || $value eq "";
        return unquote_plus($value) if unquote_plus($name) eq "format";
    }
    return undef;
}

# Clients send the same few Accept headers over and over: remember the answers.
our %NEGOTIATED;

sub media_type {
    my ($r) = @_;
    my $wanted = query_format($r->args);
    # An unencoded "+" in a media type decodes to a space; that is what was meant.
    $wanted =~ tr/ /+/ if defined $wanted;
    return $FORMATS{$wanted} // "" if defined $wanted;
    my $accept = $r->header_in("Accept") // "";
    %NEGOTIATED = () if keys %NEGOTIATED > 1000;
    return $NEGOTIATED{$accept} //= negotiate($accept);
}
# perl_set part: names

package TilsitNginx;
# PEP 503; ASCII only, as only ASCII names are valid project names.
sub normalize_name {
    my ($name) = @_;
    $name = lc($name // "");
    $name =~ s/[-_.]+/-/g;
    return $name;
}

# PEP 440 as str(packaging.version.Version(v)) writes it; undef if invalid.
our $VERSION_RE = qr{
    ^ \s* v?
    (?: ([0-9]+) ! )?
    ( [0-9]+ (?: [.][0-9]+ )* )
    (?: [-_.]? (alpha|a|beta|b|preview|pre|c|rc) [-_.]? ([0-9]+)? )?
    (?: - ([0-9]+) | [-_.]? (post|rev|r) [-_.]? ([0-9]+)? )?
    (?: [-_.]? (dev) [-_.]? ([0-9]+)? )?
    (?: [+] ([a-z0-9]+ (?: [-_.][a-z0-9]+ )*) )?
    \s* $
}xi;
our %PRE = (alpha => "a", a => "a", beta => "b", b => "b",
            c => "rc", pre => "rc", preview => "rc", rc => "rc");

sub number { my ($n) = @_; $n =~ s/^0+(?=[0-9])//; return $n; }

sub canonical_version {
    my ($v) = @_;
    my ($epoch, $release, $pre_l, $pre_n, $post_n1, $post_l, $post_n2, $dev_l, $dev_n, $local)
        = $v =~ $VERSION_RE or return undef;
    my $out = "";
    $out .= number($epoch) . "!" if defined $epoch && number($epoch) ne "0";
    $out .= join ".", map { number($_) } split /[.]/, $release;
    $out .= $PRE{lc $pre_l} . number($pre_n // 0) if defined $pre_l;
    if (defined $post_n1) {
        $out .= ".post" . number($post_n1);
    } elsif (defined $post_l) {
        $out .= ".post" . number($post_n2 // 0);
    }
    $out .= ".dev" . number($dev_n // 0) if defined $dev_l;
    $out .= "+" . join ".", map { /^[0-9]+$/ ? number($_) : lc $_ } split /[-_.]/, $local
        if defined $local;
    return $out;
}

# "<name>" or "<name>/<version>" of a legacy JSON URL, as the tree names it.
sub canonical_legacy {
    my ($path) = @_;
    my ($name, $version) = split m{/}, $path // "", 2;
    my $out = normalize_name($name);
    $out .= "/" . (canonical_version($version) // $version) if defined $version;
    return $out;
}
# perl_set part: pages

package TilsitNginx;
use Digest::SHA ();
use Fcntl ();
use Time::HiRes ();
# (ETag, serial) of a page, as tilsit computes them: a sha256 of the bytes, and
# the serial the page states. Pages are replaced by rename, so a new stat means
# new bytes; each worker caches by stat.
our %PAGES;

sub page_info {
    my ($path) = @_;
    my @st = Time::HiRes::stat($path);
    return ("", "") if !@st || !Fcntl::S_ISREG($st[2]);
    my $cached = $PAGES{$path};
    return @$cached[1, 2] if $cached && $cached->[0] eq join(":", @st[0, 1, 7, 9, 10]);
    open(my $fh, "<:raw", $path) or return ("", "");
    @st = Time::HiRes::stat($fh);
    my $data = do { local $/; <$fh> } // "";
    close $fh;
    my $etag = chr(34) . substr(Digest::SHA::sha256_hex($data), 0, 40) . chr(34);
    my $tail = length($data) > 64 ? substr($data, -64) : $data;
    my ($serial) = $tail =~ /<!--SERIAL ([0-9]+)-->\s*$/;
    ($serial) = substr($data, 0, 200) =~ /"_last-serial":([0-9]+)/ if !defined $serial;
    ($serial) = $data =~ /"last_serial": ([0-9]+)/ if !defined $serial;
    %PAGES = () if keys %PAGES > 100000;
    $PAGES{$path} = [join(":", @st[0, 1, 7, 9, 10]), $etag, $serial // ""];
    return ($etag, $serial // "");
}

# If-None-Match as tilsit reads it: "*", or a list of tags with W/ ignored.
sub etag_matches {
    my ($header, $etag) = @_;
    return 0 if ($header // "") eq "" || ($etag // "") eq "";
    return 1 if trim($header) eq "*";
    for my $candidate (split /,/, $header) {
        $candidate = trim($candidate);
        $candidate =~ s{^W/}{};
        return 1 if $candidate eq $etag;
    }
    return 0;
}

# "ETAG SERIAL" of the page the request maps to; maps split it in two.
sub page { return join(" ", page_info($_[0]->filename)); }

sub page_not_modified {
    my ($r) = @_;
    return etag_matches($r->header_in("If-None-Match"), $r->variable("tilsit_page_etag"))
        ? "1" : "";
}

sub file_not_modified {
    my ($r) = @_;
    return "" if !-f $r->filename;
    return etag_matches($r->header_in("If-None-Match"), $r->variable("tilsit_file_etag"))
        ? "1" : "";
}
# end of the perl_set parts
1;
