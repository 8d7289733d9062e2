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
//   - the record lasts recordLife (half the grace window) and is renewed
//     every look (a tenth of it), on the service clock, by a goroutine
//     that does nothing else;
//   - the sessions name the holder and take a longer lease (holderLease),
//     renewed at a third of it, which bounds what a lost race or a
//     failure could leave behind;
//   - each look, every process claims the records found expired, ends the
//     sessions listed under them that did not move to another holder
//     (presence.DropHolder) and forgets them;
//   - each look, every connection whose session is not held under the
//     current record (a failed hold, a new name) is held again: a process
//     whose own record was claimed (it stalled past the record's life)
//     takes a new name, and its sessions follow within a look.
//
// A holder that dies is found expired at most recordLife after its last
// renewal and swept within a look of that, which leaves the sweep more
// than a third of the grace window to end its sessions: they end within
// the grace window, as a lease per session would, for one write per
// process every few seconds instead of one per session.

// holderLease is a session's lease when a holder's record stands for it.
const holderLease = 10 * time.Minute

// Parts of the grace window.
func (s *Server) recordLife() time.Duration { return s.cfg.Grace / 2 }
func (s *Server) holderLook() time.Duration { return s.cfg.Grace / 10 }
func (s *Server) claimFor() time.Duration   { return s.cfg.Grace / 2 }

const (
	// claimLimit is how many dead holders one claim takes.
	claimLimit = 4
	// holdBatch is how many sessions one call of the service re-holds or
	// drops (Service.DoEach: on Redis two pipelined round trips for the
	// lot).
	holdBatch = 256
)

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

func (s *Server) currentHolder() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holder
}

// holderName returns this process's current holder, registering one
// first if there is none yet.
func (s *Server) holderName(ctx context.Context) (string, error) {
	if h := s.currentHolder(); h != "" {
		return h, nil
	}
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

// rename drops this process's name old, found claimed by another process:
// the next hold registers a new one.
func (s *Server) rename(old string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holder == old {
		s.holder = ""
		s.m.renames.Inc()
		s.logger.Warn("connections: this process's holder was found dead by another; holding its sessions under a new name", "holder", old)
	}
}

// holdAs holds c's session with hold: without a registry, a write; with
// one, listed under the current holder first, held with its name (and as
// a re-hold from the one it was held under before, if any), again if the
// name changed meanwhile, and released at once if c stopped holding it
// meanwhile.
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
		hold.From = c.swapHolder(h) // "" for a hello's hold, which takes the session whoever holds it
		if _, err := s.svc.Do(ctx, c.key, hold); err != nil {
			c.unsettle()
			return err
		}
		s.afterHold(ctx, c, hold)
		if s.currentHolder() == h {
			return nil
		}
	}
	return errors.New("connect: the holder changed three times while holding a session")
}

// afterHold settles a hold of c's session under hold.Holder: a session
// another holder took over ends c (its device went elsewhere); a session
// c stopped holding while the hold was on its way is released again. The
// release of c reads c's holder after c stops holding, and this reads
// whether c holds after setting it, so one of the two releases with the
// holder the session names.
func (s *Server) afterHold(ctx context.Context, c *conn, hold *presence.HoldConnection) {
	if hold.Moved {
		c.end(CloseReplaced, "another connection of this device took over")
		return
	}
	s.mu.Lock()
	now := s.held[graceKey{c.key, c.device}]
	s.mu.Unlock()
	switch now {
	case c:
	case nil:
		s.releaseOne(ctx, c.key, c.device, hold.Holder)
	default:
		// Another connection of the device took over meanwhile: its
		// state is written again, after this hold.
		s.reassert(ctx, c.key, c.device)
	}
}

// releaseOne releases a session held under holder and unlists it; a
// failure is retried by the holders' loop.
func (s *Server) releaseOne(ctx context.Context, key presence.Key, device, holder string) {
	if s.holding() && holder == "" {
		return // never held under a record: nothing to release
	}
	if _, err := s.svc.Do(ctx, key, &presence.ReleaseConnection{Device: device, Grace: s.cfg.Grace, Holder: holder}); err != nil {
		s.logger.Warn("connection: releasing a session", "user", key.String(), "err", err)
		s.releaseLater(key, device, holder)
		return
	}
	s.released(key, device)
	if holder != "" {
		if err := s.cfg.Holders.Remove(ctx, holder, presence.HeldSession{Key: key, Device: device}); err != nil {
			s.logger.Debug("connection: unlisting a released session", "user", key.String(), "err", err)
		}
	}
	s.reassert(ctx, key, device)
}

// reassert holds again the session of a connection that took the device
// over on this process while a release of it was on its way: the release
// may have landed after its hold, or its listing been removed after it was
// added. A connection that holds after this look holds after the release.
func (s *Server) reassert(ctx context.Context, key presence.Key, device string) {
	s.mu.Lock()
	c := s.held[graceKey{key, device}]
	s.mu.Unlock()
	if c == nil {
		return
	}
	if err := s.holdAs(ctx, c, c.holdCommand()); err != nil {
		s.logger.Warn("connection: holding a session again after a release", "user", key.String(), "err", err)
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

// retryReleases releases the sessions whose release failed.
func (s *Server) retryReleases(ctx context.Context) {
	s.mu.Lock()
	all := s.unreleased
	s.unreleased = nil
	s.mu.Unlock()
	for _, u := range all {
		s.releaseOne(ctx, u.key, u.device, u.holder)
	}
}

// records renews this process's record every look until ctx is done; a
// record found claimed gives the process a new name.
func (s *Server) records(ctx context.Context) {
	every(ctx, s.holderLook(), func() {
		if err := s.renewRecord(ctx, s.clock.Now()); err != nil && ctx.Err() == nil {
			s.logger.Warn("connections: renewing the holder's record", "err", err)
		}
	})
}

// renewRecord extends this process's record to last recordLife past at.
func (s *Server) renewRecord(ctx context.Context, at time.Time) error {
	h := s.currentHolder()
	if h == "" {
		return nil // nothing held yet, or renamed: the next hold registers
	}
	alive, err := s.cfg.Holders.Renew(ctx, h, at.Add(s.recordLife()))
	if err == nil && !alive {
		s.rename(h)
	}
	return err
}

// advanceWait bounds how long an advance of the test clock waits for the
// other processes to extend their records (BeforeAdvance). A process that
// does not answer in time (dead, or stalled) is swept after the advance.
const advanceWait = 3 * time.Second

// BeforeAdvance prepares the processes holding sessions for the test
// clock's move to until: this one extends its leases and record
// (ExtendLeases), and with Config.Advances every other live holder is
// asked to extend its own, and waited for at most advanceWait, before the
// clock moves. Without it an advance longer than a record lasts made the
// other processes' users go offline until their processes held them again.
func (s *Server) BeforeAdvance(ctx context.Context, until time.Time) error {
	if err := s.ExtendLeases(ctx, until); err != nil {
		return err
	}
	if !s.holding() || s.cfg.Advances == nil {
		return nil
	}
	missing, err := s.cfg.Advances.Announce(ctx, s.clock.Now(), until, s.currentHolder(), advanceWait)
	if err != nil {
		return fmt.Errorf("connect: asking the other processes to extend their records: %w", err)
	}
	if len(missing) > 0 {
		s.logger.Info("connections: holders that did not extend their records for the clock's advance; they are swept if they ran out", "holders", missing)
	}
	return nil
}

// extendFor extends this process's record and leases for another
// process's advance of the clock to until, and returns the holder it
// extended ("" when it holds nothing, or failed: the announcer then counts
// it as missing, and the sweep after the advance may claim it, which the
// next look repairs by holding anew).
func (s *Server) extendFor(ctx context.Context, until time.Time) string {
	h := s.currentHolder()
	if h == "" {
		return ""
	}
	if err := s.ExtendLeases(ctx, until); err != nil {
		s.logger.Warn("connections: extending the holder's record for another node's advance of the clock", "err", err)
		return ""
	}
	if s.currentHolder() != h {
		return "" // claimed meanwhile: renamed
	}
	return h
}

// sweeps holds again what is not held under the current name, retries
// failed releases and sweeps the dead holders every look, until ctx is
// done.
func (s *Server) sweeps(ctx context.Context) {
	every(ctx, s.holderLook(), func() {
		if err := s.reconcile(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("connections: holding sessions under this process's record", "err", err)
		}
		s.retryReleases(ctx)
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("connections: sweeping dead holders", "err", err)
		}
	})
}

// reconcile holds under the current name (registering one if needed) the
// session of every greeted connection held under another name or none.
func (s *Server) reconcile(ctx context.Context) error {
	s.mu.Lock()
	n := len(s.held)
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	h, err := s.holderName(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	var stale []*conn
	for _, c := range s.held {
		if c.greeted.Load() && !c.settledUnder(h) {
			stale = append(stale, c)
		}
	}
	s.mu.Unlock()
	return inBatches(ctx, stale, holdBatch, func(b []*conn) error { return s.holdEach(ctx, h, b) })
}

// holdEach lists conns (a batch) under h and holds their sessions with it,
// as re-holds from the names they were held under, in one call of the
// service.
func (s *Server) holdEach(ctx context.Context, h string, conns []*conn) error {
	held := make([]presence.HeldSession, len(conns))
	keys := make([]presence.Key, len(conns))
	cmds := make([]*presence.HoldConnection, len(conns))
	each := make([]presence.Command, len(conns))
	for i, c := range conns {
		held[i] = presence.HeldSession{Key: c.key, Device: c.device}
	}
	if err := s.cfg.Holders.Add(ctx, h, held...); err != nil {
		return err
	}
	for i, c := range conns {
		cmd := c.holdCommand()
		cmd.Holder, cmd.From = h, c.swapHolder(h)
		keys[i], cmds[i], each[i] = c.key, cmd, cmd
	}
	now := s.clock.Now()
	var first error
	for i, err := range s.svc.DoEach(ctx, keys, each) {
		if err != nil {
			conns[i].unsettle() // the next look retries
			first = cmpErr(first, err)
			continue
		}
		conns[i].renewed.Store(now.UnixMilli())
		s.afterHold(ctx, conns[i], cmds[i])
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
	var errs []error
	for ctx.Err() == nil {
		now := s.clock.Now()
		claimed, err := s.cfg.Holders.Claim(ctx, now, now.Add(s.claimFor()), claimLimit)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, c := range claimed {
			if c.Holder == s.currentHolder() {
				// This process's own record ran out (the clock jumped
				// past it, or the process stalled): hold anew first, so
				// that ending the old name's sessions ends none.
				s.rename(c.Holder)
				if err := s.reconcile(ctx); err != nil {
					errs = append(errs, err)
					continue // the claim runs out and a later look retries
				}
			}
			if err := s.drop(ctx, c); err != nil {
				errs = append(errs, err) // the claim runs out and a later look retries
			}
		}
		if len(claimed) < claimLimit {
			break
		}
	}
	return errors.Join(errs...)
}

// drop ends the sessions c's holder held, a batch a call, and
// forgets the holder once all of them are.
func (s *Server) drop(ctx context.Context, c presence.ClaimedHolder) error {
	s.logger.Info("connections: ending the sessions of a holder found dead", "holder", c.Holder, "sessions", len(c.Held))
	first := inBatches(ctx, c.Held, holdBatch, func(held []presence.HeldSession) error {
		keys := make([]presence.Key, len(held))
		cmds := make([]presence.Command, len(held))
		for i, hs := range held {
			keys[i], cmds[i] = hs.Key, &presence.DropHolder{Device: hs.Device, Holder: c.Holder}
		}
		var first error
		for _, err := range s.svc.DoEach(ctx, keys, cmds) {
			if err != nil {
				first = cmpErr(first, err)
				continue
			}
			s.m.swept.Inc()
		}
		return first
	})
	if first = cmpErr(first, ctx.Err()); first != nil {
		return fmt.Errorf("connect: ending the sessions of holder %s: %w", c.Holder, first)
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
