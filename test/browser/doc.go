// Package browser checks scanq's web pages in a real browser: headless
// Chromium, driven over the DevTools protocol by chromedp, against `scanq
// serve` on the embedded defaults. It is a module of its own so that the
// main module does not carry chromedp; `make browser` runs it, and CI
// (.ci/run) installs Debian's chromium and sets SCANQ_TEST_BROWSER, so that
// there a missing browser fails the test instead of skipping it.
package browser
