package chaos

import (
	"github.com/tidemark/tidemark/internal/backoff"

	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tidemark/tidemark/chaos/faults"
	"github.com/tidemark/tidemark/chaos/history"
	"github.com/tidemark/tidemark/internal/netproxy"
	"github.com/tidemark/tidemark/internal/proc"
	"github.com/tidemark/tidemark/stream"
)

// sstFlips is how many bits the corrupt-sst fault flips in one table.
const sstFlips = 8

// storeDir is the JetStream store of a NATS server and copyDir the copy
// the tail-loss fault takes of it.
func (c *Cluster) storeDir(nn *natsNode) string { return filepath.Join(c.dir, nn.name) }
func (c *Cluster) copyDir(nn *natsNode) string  { return filepath.Join(c.dir, nn.name+".copy") }

// paths returns every proxy on a path to or from nn: its client path, its
// routes and each replica's path to it.
func (c *Cluster) paths(nn *natsNode) []*netproxy.Proxy {
	out := append([]*netproxy.Proxy{nn.front}, nn.routes...)
	for i, x := range c.nats {
		if x != nn {
			continue
		}
		for _, r := range c.replicas {
			out = append(out, r.proxies[i])
		}
	}
	return out
}

// copyStore kills nn, copies its store and starts it again.
func (in *injector) copyStore(nn *natsNode) error {
	c := in.c
	if err := os.RemoveAll(c.copyDir(nn)); err != nil {
		return err
	}
	if err := nn.proc.Kill(); err != nil {
		return err
	}
	err := faults.CopyDir(c.storeDir(nn), c.copyDir(nn))
	in.copied = time.Now()
	if serr := nn.proc.Start(); err == nil {
		err = serr
	}
	return err
}

// restoreStore kills nn, puts the copy of its store back and starts it,
// cut off from every client and route until it answers again. On one
// server it records the tail that the stream lost: the copy's last
// sequence, read before any client can write to the restored server.
func (in *injector) restoreStore(ctx context.Context, nn *natsNode) error {
	c := in.c
	cut := c.paths(nn)
	for _, p := range cut {
		p.Partition()
	}
	defer func() {
		for _, p := range cut {
			p.Heal()
		}
	}()
	if err := nn.proc.Kill(); err != nil {
		return err
	}
	err := faults.RestoreDir(c.copyDir(nn), c.storeDir(nn))
	if serr := nn.proc.Start(); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	if len(c.nats) > 1 {
		return nil // the other servers hold the stream; nothing may be lost
	}
	// The restore is finished even when the run ends meanwhile, so that the
	// lost tail is recorded.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recoverTimeout)
	defer cancel()
	if err := proc.WaitHTTP(wctx, nn.proc, "http://"+nn.monitor+"/healthz", recoverTimeout); err != nil {
		return err
	}
	for {
		pctx, pcancel := context.WithTimeout(wctx, 2*time.Second)
		last, err := StreamLast(pctx, c.js)
		pcancel()
		if err == nil {
			for _, p := range cut {
				p.Heal()
			}
			in.losses = append(in.losses, history.Loss{Last: last, Copied: in.copied, Restored: time.Now()})
			return nil
		}
		if serr := backoff.Sleep(wctx, 50*time.Millisecond); serr != nil {
			return fmt.Errorf("restored store: last sequence: %v", err)
		}
	}
}

// deleteStream seals the stream (no write is stored in it from then on),
// dumps it and deletes it, and returns it as an epoch of the history.
func (in *injector) deleteStream(ctx context.Context) (history.Epoch, error) {
	c := in.c
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	st, err := stream.Open(ctx, c.js, stream.Config{})
	if err != nil {
		return history.Epoch{}, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return history.Epoch{}, err
	}
	cfg := info.Config
	cfg.Sealed = true
	if _, err := c.js.UpdateStream(ctx, cfg); err != nil {
		return history.Epoch{}, fmt.Errorf("seal stream: %w", err)
	}
	// On a cluster, writes proposed before the seal may still be stored
	// after UpdateStream returns: dump until the stream's last sequence
	// stands still at what the dump holds.
	var msgs []history.Message
	var derr error
	for ctx.Err() == nil {
		msgs, derr = DumpStream(ctx, c.js, stream.Config{})
		after, err := st.Info(ctx)
		if derr != nil || err != nil || after.State.LastSeq == uint64(len(msgs)) {
			break
		}
		_ = backoff.Sleep(ctx, 50*time.Millisecond)
	}
	if err := c.js.DeleteStream(ctx, st.Name()); err != nil {
		return history.Epoch{}, fmt.Errorf("delete stream: %w", err)
	}
	if derr != nil {
		return history.Epoch{}, derr
	}
	return history.Epoch{StreamID: st.ID(), Stream: msgs, Deleted: time.Now()}, nil
}

// corruptSST stops replica n with SIGTERM (Badger writes its memtables
// into tables as it closes) and flips bits in one of its .sst files. It
// says which file and where. On failure it starts the replica again.
func (in *injector) corruptSST(n *node) (what string, err error) {
	defer func() {
		if err != nil {
			_ = n.proc.Start()
		}
	}()
	if err := n.proc.Close(); err != nil {
		return "", err
	}
	dir := filepath.Join(in.c.dir, n.id)
	var files []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".sst") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("corrupt sst: no .sst file under %s", dir)
	}
	sort.Strings(files)
	file := files[in.rng.IntN(len(files))]
	offs, err := faults.FlipBits(file, in.rng, sstFlips)
	return fmt.Sprintf("%s at %v", filepath.Base(file), offs), err
}
