package connect

import (
	"context"
	"errors"
	"fmt"
	"time"

	presence "github.com/presenced/presenced"
)

// With a registry of holders (Config.Holders, shared by the nodes of one
// Redis), a process holds its connections' sessions under one record of
// its own instead of a lease per session:
//
//   - the record lasts recordLife and is renewed every look (a tenth of
//     the grace window), on the service clock;
//   - the sessions name the holder and take a long lease (holderLease),
//     renewed at a third of it, which only matters if every process
//     sharing the store is gone;
//   - each look, every process claims the records found expired, ends the
//     sessions listed under them that did not move to another holder
//     (presence.DropHolder) and forgets them;
//   - a process whose own record was claimed (it paused for longer than
//     the record lasts) takes a new name and holds its sessions again.
//
// A holder that dies is found expired at most recordLife after its last
// renewal, and swept within a look of that: its sessions end within the
// grace window, as a lease per session would, for one write per process
// every few seconds instead of one per session.

// holderLease is a session's lease when a holder's record stands for it.
const holderLease = time.Hour

// Parts of the grace window.
func (s *Server) recordLife() time.Duration { return s.cfg.Grace * 4 / 5 }
func (s *Server) holderLook() time.Duration { return max(s.cfg.Grace/10, time.Millisecond) }

// claimLimit is how many dead holders one look claims.
const claimLimit = 4

// holding reports whether the sessions are held under a holder's record.
func (s *Server) holding() bool { return s.cfg.Holders != nil }

// lease is how long a session's lease runs from a hold or a renewal.
func (s *Server) lease() time.Duration {
	if s.holding() {
		return max(holderLease, s.cfg.Grace)
	}
	return s.cfg.Grace
}

// newHolderName returns a name for this process's record, unique to it:
// its prefix, then a random part (a restart is a new holder).
func (s *Server) newHolderName() string {
	p := s.cfg.HolderPrefix
	return p[:min(len(p), presence.MaxHolderLength-14)] + "." + presence.NewGUID()[:13]
}

// holderName returns this process's current holder, registering one
// first if there is none yet.
func (s *Server) holderName(ctx context.Context) (string, error) {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if h := s.currentHolder(); h != "" {
		return h, nil
	}
	h := s.newHolderName()
	if err := s.cfg.Holders.Register(ctx, h, s.clock.Now().Add(s.recordLife())); err != nil {
		return "", fmt.Errorf("connect: registering holder %s: %w", h, err)
	}
	s.mu.Lock()
	s.holder = h
	s.mu.Unlock()
	s.logger.Info("connections: holding sessions as", "holder", h)
	return h, nil
}

func (s *Server) currentHolder() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holder
}

// holdAs lists c's session under the current holder and holds it with
// hold (whose Holder it sets), again if the holder changed meanwhile.
func (s *Server) holdAs(ctx context.Context, c *conn, hold *presence.HoldConnection) error {
	if !s.holding() {
		_, err := s.svc.Do(ctx, c.key, hold)
		return err
	}
	for range 3 {
		h, err := s.holderName(ctx)
		if err != nil {
			return err
		}
		if err := s.cfg.Holders.Add(ctx, h, presence.HeldSession{Key: c.key, Device: c.device}); err != nil {
			return err
		}
		hold.Holder = h
		if _, err := s.svc.Do(ctx, c.key, hold); err != nil {
			return err
		}
		c.setHolder(h)
		if s.currentHolder() == h {
			return nil
		}
	}
	return errors.New("connect: the holder changed three times while holding a session")
}

// releaseHeld lists c's session under its holder no more, once released.
func (s *Server) releaseHeld(ctx context.Context, c *conn, holder string) {
	if holder == "" {
		return
	}
	if err := s.cfg.Holders.Remove(ctx, holder, presence.HeldSession{Key: c.key, Device: c.device}); err != nil {
		s.logger.Debug("connection: unlisting a released session", "user", c.key.String(), "err", err)
	}
}

// unreleased is a session whose release failed.
type unreleased struct {
	key            presence.Key
	device, holder string
}

// releaseLater queues a session whose release failed, when it is held
// under a record (otherwise its lease ends it within the grace window).
func (s *Server) releaseLater(key presence.Key, device, holder string) {
	if holder == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unreleased = append(s.unreleased, unreleased{key, device, holder})
}

// retryReleases releases the sessions whose release failed, keeping
// those that fail again.
func (s *Server) retryReleases(ctx context.Context) {
	s.mu.Lock()
	all := s.unreleased
	s.unreleased = nil
	s.mu.Unlock()
	for i, u := range all {
		s.mu.Lock()
		_, again := s.held[graceKey{u.key, u.device}]
		s.mu.Unlock()
		if again {
			continue // a connection of the device holds it again
		}
		_, err := s.svc.Do(ctx, u.key, &presence.ReleaseConnection{Device: u.device, Grace: s.cfg.Grace, Holder: u.holder})
		if err != nil {
			s.mu.Lock()
			s.unreleased = append(s.unreleased, all[i:]...)
			s.mu.Unlock()
			return
		}
		s.released(u.key, u.device)
		if err := s.cfg.Holders.Remove(ctx, u.holder, presence.HeldSession{Key: u.key, Device: u.device}); err != nil {
			s.logger.Debug("connection: unlisting a released session", "user", u.key.String(), "err", err)
		}
	}
}

// holders renews this process's record and sweeps the dead holders' every
// look, until ctx is done.
func (s *Server) holders(ctx context.Context) {
	t := time.NewTicker(s.holderLook())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.renewRecord(ctx, s.clock.Now()); err != nil && ctx.Err() == nil {
			s.logger.Warn("connections: renewing the holder's record", "err", err)
		}
		s.retryReleases(ctx)
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("connections: sweeping dead holders", "err", err)
		}
	}
}

// renewRecord extends this process's record to last recordLife past at;
// a record found claimed makes it hold its sessions under a new one.
func (s *Server) renewRecord(ctx context.Context, at time.Time) error {
	h := s.currentHolder()
	if h == "" {
		return nil // nothing held yet
	}
	alive, err := s.cfg.Holders.Renew(ctx, h, at.Add(s.recordLife()))
	if err != nil || alive {
		return err
	}
	s.logger.Warn("connections: this process's holder was found dead by another; holding its sessions anew", "holder", h)
	return s.rehold(ctx, h)
}

// rehold replaces the holder old, claimed by another process, with a new
// one, and holds every session of this process under it.
func (s *Server) rehold(ctx context.Context, old string) error {
	s.regMu.Lock()
	s.mu.Lock()
	if s.holder != old {
		s.mu.Unlock()
		s.regMu.Unlock()
		return nil // done already
	}
	s.holder = ""
	s.mu.Unlock()
	s.regMu.Unlock()
	h, err := s.holderName(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	all := make([]*conn, 0, len(s.held))
	for _, c := range s.held {
		all = append(all, c)
	}
	s.mu.Unlock()
	s.m.reholds.Inc()
	var first error
	for len(all) > 0 && ctx.Err() == nil {
		n := min(renewBatch*8, len(all))
		first = cmpErr(first, s.holdEach(ctx, h, all[:n]))
		all = all[n:]
	}
	return first
}

// holdEach lists conns under h and holds their sessions with it.
func (s *Server) holdEach(ctx context.Context, h string, conns []*conn) error {
	held := make([]presence.HeldSession, len(conns))
	for i, c := range conns {
		held[i] = presence.HeldSession{Key: c.key, Device: c.device}
	}
	if err := s.cfg.Holders.Add(ctx, h, held...); err != nil {
		return err
	}
	now := s.clock.Now()
	var first error
	for len(conns) > 0 {
		n := min(renewBatch, len(conns))
		keys := make([]presence.Key, n)
		cmds := make([]presence.Command, n)
		for i, c := range conns[:n] {
			cmd := c.holdCommand()
			cmd.Holder = h
			keys[i], cmds[i] = c.key, cmd
		}
		for i, err := range s.svc.DoEach(ctx, keys, cmds) {
			if err != nil {
				first = cmpErr(first, err)
				continue
			}
			conns[i].setHolder(h)
			conns[i].renewed.Store(now.UnixMilli())
		}
		conns = conns[n:]
	}
	return first
}

// Sweep claims the holders whose record expired, ends the sessions they
// held that did not move to another holder since, and forgets them. The
// test clock's advance calls it once the clock moved; otherwise it runs
// every look. Without a registry of holders it does nothing.
func (s *Server) Sweep(ctx context.Context) error {
	if !s.holding() {
		return nil
	}
	for ctx.Err() == nil {
		now := s.clock.Now()
		claimed, err := s.cfg.Holders.Claim(ctx, now, now.Add(s.cfg.Grace), claimLimit)
		if err != nil || len(claimed) == 0 {
			return err
		}
		for _, c := range claimed {
			if c.Holder == s.currentHolder() {
				// This process's own record ran out (the clock jumped
				// past it, or the process stalled): hold anew first,
				// so that ending the old holder's sessions ends none.
				if err := s.rehold(ctx, c.Holder); err != nil {
					return err
				}
			}
			if err := s.drop(ctx, c); err != nil {
				return err // the claim runs out and the next look retries
			}
		}
		if len(claimed) < claimLimit {
			return nil
		}
	}
	return ctx.Err()
}

// drop ends the sessions c's holder held and forgets the holder.
func (s *Server) drop(ctx context.Context, c presence.ClaimedHolder) error {
	s.logger.Info("connections: ending the sessions of a holder found dead", "holder", c.Holder, "sessions", len(c.Held))
	held := c.Held
	for len(held) > 0 {
		n := min(renewBatch, len(held))
		keys := make([]presence.Key, n)
		cmds := make([]presence.Command, n)
		for i, hs := range held[:n] {
			keys[i], cmds[i] = hs.Key, &presence.DropHolder{Device: hs.Device, Holder: c.Holder}
		}
		for _, err := range s.svc.DoEach(ctx, keys, cmds) {
			if err != nil {
				return err
			}
		}
		s.m.swept.Add(float64(n))
		held = held[n:]
	}
	return s.cfg.Holders.Forget(ctx, c.Holder)
}

// forgetHolder removes this process's record on a clean shutdown, once
// every session was released. If some could not be released, the record is
// left to run out, and the sessions are ended by the sweep that finds it.
func (s *Server) forgetHolder(ctx context.Context) {
	s.retryReleases(ctx)
	s.mu.Lock()
	left := len(s.unreleased)
	s.mu.Unlock()
	if left > 0 {
		s.logger.Warn("connections: sessions not released at shutdown end when this process's record runs out", "sessions", left)
		return
	}
	if h := s.currentHolder(); h != "" {
		if err := s.cfg.Holders.Forget(ctx, h); err != nil {
			s.logger.Warn("connections: forgetting the holder's record", "holder", h, "err", err)
		}
	}
}
