package main

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

// TestIdempotencyClaimOwners, on each backend: a node starting up releases its dead process's
// unanswered claims and leaves the claims of uploads other nodes are receiving; a request whose
// claim was released and taken by a retry can neither answer nor release the retry's; a claim left
// unanswered past abandonedClaimAge (its node died for good) is taken over.
func TestIdempotencyClaimOwners(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, k := open(t)
		now := time.Now()
		claim := func(key, owner string, at time.Time) error {
			t.Helper()
			stored, err := st.ClaimIdempotencyKey(ctx, k.ID, key, owner, at)
			if stored != nil {
				t.Fatalf("claim %s by %s: an answer %+v", key, owner, stored)
			}
			return err
		}
		for key, owner := range map[string]string{"a": "node_a/1", "b": "node_b/1"} {
			if err := claim(key, owner, now); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.ReleaseAbandonedIdempotencyKeys(ctx, "node_a/"); err != nil {
			t.Fatal(err)
		}
		if err := claim("b", "node_a/2", now); !errors.Is(err, ErrIdempotencyInProgress) {
			t.Errorf("node_b's upload after node_a started: %v, want still in progress", err)
		}
		if err := claim("a", "node_a/2", now); err != nil {
			t.Errorf("node_a's dead claim after its restart: %v, want claimed again", err)
		}
		// The first request on "a", still alive somewhere, ends after the retry claimed the key.
		j := Job{ID: must(newJobID(now, rand.Reader))(t), KeyID: k.ID, ImageType: "png", AudioType: "wav", CreatedAt: now.UTC()}
		answer := storedResponse{Fingerprint: "f", JobID: j.ID, StatusCode: 201, Body: []byte(`{}`)}
		if err := st.CreateJobIdempotent(ctx, j, "a", "node_a/1", answer); err == nil {
			t.Error("the released request answered over the retry's claim")
		}
		if err := st.ReleaseIdempotencyKey(ctx, k.ID, "a", "node_a/1"); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateJobIdempotent(ctx, j, "a", "node_a/2", answer); err != nil {
			t.Errorf("the retry holding the claim: %v", err)
		}
		// node_b never comes back: its claim is taken over once abandoned, not before.
		if err := claim("b", "node_c/1", now.Add(abandonedClaimAge()-time.Minute)); !errors.Is(err, ErrIdempotencyInProgress) {
			t.Errorf("a claim younger than abandonedClaimAge: %v, want still in progress", err)
		}
		if err := claim("b", "node_c/1", now.Add(abandonedClaimAge()+time.Minute)); err != nil {
			t.Errorf("a claim older than abandonedClaimAge: %v, want claimed again", err)
		}
	})
}
