package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"
)

// clusterConfig is the part of serve's configuration that lets several vidgen nodes work as one
// service: the database they share.
type clusterConfig struct {
	// Database is a Postgres URL; "" keeps jobs and keys in the SQLite file of the data directory.
	Database string
	// Lease is how long a claim on a job lasts unless its worker renews it (lease.go); 0 for
	// defaultLease.
	Lease time.Duration
	// API is false on a render-only node: it claims and renders jobs and sends their webhooks, and
	// listens on no -addr; other nodes (or -workers 0 ones) take the API's requests.
	API bool
}

// minLease is the shortest -lease: renewals a second apart at most.
const minLease = 3 * time.Second

// envNames are the variables of the flags whose variable is not VIDGEN_ and the flag's name.
var envNames = map[string]string{"database": "VIDGEN_DATABASE_URL"}

// addClusterFlags registers the cluster's flags on serve's flag set.
func addClusterFlags(fs *flag.FlagSet, cfg *config) {
	fs.DurationVar(&cfg.Lease, "lease", defaultLease, "how long a node's claim on a job lasts unless renewed (3 times a lease while it renders): a dead node's jobs are taken up by another after it")
	fs.BoolVar(&cfg.API, "api", true, "serve the HTTP API on -addr; false makes a render-only node (renders and webhooks, health and metrics on -metrics-addr) beside nodes that serve it, on one -database and -files")
	fs.StringVar(&cfg.Database, "database", "", "Postgres URL (postgres://user:password@host:5432/db) for jobs and keys, shared by every node; default: the SQLite file in -data")
}

// sweepGrace is how young an upload or output the start-up sweep leaves alone, with files of kind
// filesKind: none when this node alone writes them; an hour when other nodes may be placing the
// uploads of a job they have yet to commit, in a shared bucket or, with a shared queue, on disk
// storage the nodes share (docs/scaling.md).
func (c clusterConfig) sweepGrace(filesKind string) time.Duration {
	if filesKind != "disk" || c.Database != "" {
		return time.Hour
	}
	return 0
}

// checkClusterConfig validates the cluster's settings.
func checkClusterConfig(cfg *config) error {
	if cfg.Database != "" && !isPostgresURL(cfg.Database) {
		// The value is not repeated: it may hold a password.
		return badSetting("database", "not a postgres:// URL (leave it unset for the SQLite file in -data)")
	}
	if !cfg.API {
		if cfg.Workers == 0 {
			return badSetting("api", "false with -workers 0 leaves the node nothing to do: give it workers, or serve the API")
		}
		if cfg.PublicURL == "" {
			// Without a listener there is no address to derive the links from, and a render-only
			// node's webhooks carry the outputs' URLs.
			return badSetting("public-url", "is needed with -api=false: the webhooks this node sends link to the outputs at the address clients reach the API nodes at, like https://video.example.com")
		}
	}
	if cfg.Lease < minLease {
		return badSetting("lease", "must be at least %s: it is renewed %d times a lease", minLease, leaseRenewals)
	}
	return nil
}

// openStoreFor opens the store serve is configured with: the Postgres database at database, or
// else the SQLite file of dirs. For SQLite it also returns the file as opened, for the health check.
func openStoreFor(ctx context.Context, dirs dataDir, database string, now func() time.Time) (*Store, os.FileInfo, error) {
	if database != "" {
		st, err := OpenPostgresStore(ctx, database, now)
		return st, nil, err
	}
	st, err := OpenStore(ctx, dirs.db(), now)
	if err != nil {
		return nil, nil, err
	}
	fi, err := os.Stat(dirs.db())
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	return st, fi, nil
}
