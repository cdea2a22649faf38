package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/config"
)

// reloadDebounce lets an editor finish writing (several events) before a
// reload reads the files.
const reloadDebounce = 250 * time.Millisecond

// Reload re-reads the policy files and the device catalogue (from the
// config file, when the server has one) and swaps them in together,
// atomically. A file that fails to parse or validate is refused: the rules
// in force stay, and the failure is logged and audited.
func (s *Server) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	files, devices := s.policyFiles, s.devices
	if s.configPath != "" {
		cfg, err := config.Load(s.configPath)
		if err == nil {
			err = cfg.Finish()
		}
		if err != nil {
			return s.reloadFailed(ctx, fmt.Errorf("config: %w", err))
		}
		files, devices = cfg.Policies, cfg.Devices
	}
	pol, err := loadPolicy(files)
	if err != nil {
		return s.reloadFailed(ctx, err)
	}
	logLint(s.log, pol)
	if err := s.Broker.SetRules(pol, catalogue(devices)); err != nil {
		return s.reloadFailed(ctx, err)
	}
	s.policyFiles, s.devices = files, devices
	reason := fmt.Sprintf("%d policies, %d devices", len(pol.PolicyIDs()), len(devices))
	s.log.Info("policies reloaded", "policies", len(pol.PolicyIDs()), "devices", len(devices))
	return s.Broker.Audit(ctx, broker.Caller{RequestID: "reload", Path: "reload"},
		&audit.Event{Type: "admin", Action: "ReloadPolicy", Decision: audit.DecisionAllow, Reason: reason})
}

func (s *Server) reloadFailed(ctx context.Context, cause error) error {
	s.log.Error("policy reload refused; the rules in force stay", "err", cause)
	err := fmt.Errorf("reload refused (the rules in force stay): %w", cause)
	if aerr := s.Broker.Audit(ctx, broker.Caller{RequestID: "reload", Path: "reload"},
		&audit.Event{Type: "admin", Action: "ReloadPolicy", Decision: audit.DecisionDeny, Reason: "reload refused", Error: cause.Error()}); aerr != nil {
		err = errors.Join(err, aerr)
	}
	return err
}

// watchFiles reloads when the config file or a policy file changes. It
// watches their directories, so editors that replace files by renaming are
// seen too.
func (s *Server) watchFiles(ctx context.Context) error {
	paths := slices.Clone(s.policyFiles)
	if s.configPath != "" {
		paths = append(paths, s.configPath)
	}
	if len(paths) == 0 {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch policy files: %w", err)
	}
	watched := map[string]bool{}
	dirs := map[string]bool{}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			w.Close()
			return err
		}
		watched[abs] = true
		dirs[filepath.Dir(abs)] = true
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			w.Close()
			return fmt.Errorf("watch %s: %w", d, err)
		}
	}
	go func() {
		defer w.Close()
		var timer <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if watched[filepath.Clean(ev.Name)] && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
					timer = time.After(reloadDebounce)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				s.log.Warn("policy file watcher", "err", err)
			case <-timer:
				timer = nil
				_ = s.Reload(ctx) // logged and audited inside
			}
		}
	}()
	return nil
}
