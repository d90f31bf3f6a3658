package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// runHealth is `vidgen health`: it asks the serve listening on -addr (VIDGEN_ADDR, as serve reads it)
// for GET /api/health and returns nil only on its 200, so a container's HEALTHCHECK or a deploy script
// needs no curl in the image. Any other answer, or none within -timeout, is an error that names the
// URL and what came back; the answer's body goes to stdout.
func runHealth(ctx context.Context, args []string, env func(string) string, client *http.Client, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr(env, envName("addr"), ":8080"), "the address vidgen serve listens on ["+envName("addr")+"]")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	fs.String("data", "", "accepted, as by every command; health reads no data")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("health: unexpected argument %q", fs.Arg(0))
	}
	url, err := healthURL(*addr)
	if err != nil {
		return fmt.Errorf("health: -addr %q: %w", *addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("health: %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	_, err = stdout.Write(body)
	return err
}

// healthURL is the /api/health URL of a serve listening on addr: an address that listens on every
// interface (":8080", "0.0.0.0:8080", "[::]:8080") is asked on loopback.
func healthURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port == "" || port == "0" {
		return "", errors.New("no fixed port to ask")
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/api/health", nil
}
