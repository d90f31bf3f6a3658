package main

import (
	"io"
	"strings"
	"testing"
)

// TestS3EndpointCredentials: an -s3-endpoint with credentials in it is refused with the variables
// to use instead, and the secret is not in the error, nor in that of an endpoint that does not
// parse.
func TestS3EndpointCredentials(t *testing.T) {
	t.Parallel()
	for endpoint, want := range map[string]string{
		"http://user:hunter2@127.0.0.1:41468": `"http://user:xxxxx@127.0.0.1:41468" must not contain credentials; use VIDGEN_S3_ACCESS_KEY_ID and VIDGEN_S3_SECRET_ACCESS_KEY`,
		"user:hunter2@127.0.0.1:41468":        "is not an http:// or https:// URL",
		"http://user:hunter2@[::1":            "is not an http:// or https:// URL",
	} {
		_, err := parseServeFlags([]string{"-files", "s3://bucket", "-s3-endpoint", endpoint}, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("-s3-endpoint %s: %v; want %q, without the secret", endpoint, err, want)
		}
	}
}
