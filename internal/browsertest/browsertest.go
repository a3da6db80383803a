// Package browsertest runs headless Chromium, the Debian package
// (`apt-get install chromium`; .ci/browser-packages.sh installs it), for
// tests that look at a page as a browser renders it: the DOM after
// parsing and styling (DumpDOM), and a screenshot (Screenshot).
//
// Without Chromium the tests skip with a message, unless
// SMIMESYNC_REQUIRE_SERVERS=1, which makes them fail (CI).
//
// Chromium runs with a fresh profile, no sandbox (the tests run as root in
// CI), and every background service off; its proxy is a closed port on
// loopback, so that a page that tried to load anything from elsewhere
// would fail to, rather than reach out (Chromium sends loopback addresses
// past the proxy: the pages under test are served there).
package browsertest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Timeout bounds one run of Chromium.
const Timeout = 90 * time.Second

// names are the names Chromium's binary goes by.
var names = []string{"chromium", "chromium-browser"}

// Find returns the path of Chromium, or skips tb (fails it when
// SMIMESYNC_REQUIRE_SERVERS=1) when there is none.
func Find(tb testing.TB) string {
	tb.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := "headless Chromium is not installed (Debian: apt-get install --no-install-recommends chromium, or run .ci/browser-packages.sh as root)"
	if os.Getenv("SMIMESYNC_REQUIRE_SERVERS") == "1" {
		tb.Fatalf("%s, and SMIMESYNC_REQUIRE_SERVERS=1 requires it", msg)
	}
	tb.Skip(msg)
	return ""
}

// args are Chromium's flags for one headless run.
func args(tb testing.TB, extra ...string) []string {
	return append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--no-default-browser-check", "--no-pings",
		"--proxy-server=http://127.0.0.1:9", "--hide-scrollbars",
		"--user-data-dir=" + tb.TempDir(),
	}, extra...)
}

// run runs Chromium with args and returns its standard output.
func run(tb testing.TB, bin string, a []string) []byte {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, a...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("chromium %v: %v\n%s", a, err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// DumpDOM loads url in Chromium and returns the DOM it built, serialised.
func DumpDOM(tb testing.TB, bin, url string) string {
	tb.Helper()
	out := run(tb, bin, args(tb, "--dump-dom", url))
	if len(out) == 0 {
		tb.Fatalf("chromium --dump-dom %s printed nothing", url)
	}
	return string(out)
}

// Screenshot loads url in a window of width × height and saves a PNG of
// it to file.
func Screenshot(tb testing.TB, bin, url, file string, width, height int) {
	tb.Helper()
	os.Remove(file)
	run(tb, bin, args(tb, "--screenshot="+file, "--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height), url))
	if _, err := os.Stat(file); err != nil {
		tb.Fatalf("chromium took no screenshot of %s: %v", url, err)
	}
}
