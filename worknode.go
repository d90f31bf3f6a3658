package main

import (
	"context"
)

// work runs s as a render-only node (serve -api=false): it claims jobs from the shared store,
// renders them and sends their webhooks, with no API listener; health and metrics are on
// -metrics-addr. It returns when ctx ends, after the renders in flight had ShutdownGrace to finish
// (those that did not go back to PENDING for another node, as on serve's shutdown).
func work(ctx context.Context, s *server, ffmpegVersion string) error {
	metricsAt, stopMetrics, err := s.startMetricsListener()
	if err != nil {
		return err
	}
	defer stopMetrics()
	stop, err := s.start(ctx)
	if err != nil {
		return err
	}
	s.log.Info("vidgen rendering, no API (-api=false)", "data", s.cfg.DataDir, "public_url", s.cfg.PublicURL, "workers", s.cfg.Workers,
		"metrics", metricsAt, "ffmpeg", ffmpegVersion, "version", version,
		"store", s.store.Backend(), "files", s.files.Kind(), "node", s.jobs.leases.node, "lease", s.jobs.leases.duration)
	sd := notifier{socket: s.cfg.NotifySocket}
	if err := sd.notify("READY=1\nSTATUS=rendering, no API"); err != nil {
		s.log.Warn("cannot tell systemd the service is ready", "err", err)
	}
	if s.cfg.WatchdogEvery > 0 {
		go sd.keepAlive(ctx, s.cfg.WatchdogEvery, s.healthy, s.log)
	}
	<-ctx.Done()
	s.log.Info("shutting down", "grace", s.cfg.ShutdownGrace.String())
	if err := sd.notify("STOPPING=1"); err != nil {
		s.log.Warn("cannot tell systemd the service is stopping", "err", err)
	}
	grace, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	s.renderer.stopClaiming()
	stop(grace)
	s.log.Info("stopped")
	return nil
}
