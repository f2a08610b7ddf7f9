package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// MaxSamplePerCategory bounds SampleEntries: a self-test probes each sampled
// name once per group, and thousands per category would only flood the
// filter and the incident log.
const MaxSamplePerCategory = 1000

// SampleEntries returns up to perCategory entries of every category that has
// any, read from the feeds and the hand-added entries: the names a self-test
// probes to show each category is filtered as the policy says.
//
// The choice is deterministic but spread over the whole list: an entry is
// picked when the hash of its name is among the category's smallest, so the
// same database gives the same sample, and a list sorted by name does not
// give only names starting with "0". Domain names come first; URL entries
// and IP addresses only fill a category that has too few domains, because a
// DNS probe can test a domain but not a path. Exceptions are never picked.
// Each category's names are in hash order.
func (s *Store) SampleEntries(perCategory int) (map[string][]string, error) {
	if perCategory < 1 || perCategory > MaxSamplePerCategory {
		return nil, fmt.Errorf("sample entries: %d per category; want 1 to %d", perCategory, MaxSamplePerCategory)
	}
	// One reservoir per category and tier: [0] domains, [1] URLs and IPs.
	res := map[string]*[2]bottomK{}
	add := func(cat string, name []byte) {
		r := res[cat]
		if r == nil {
			r = &[2]bottomK{{k: perCategory}, {k: perCategory}}
			res[cat] = r
		}
		tier := 0
		if !isDomainEntry(name) {
			tier = 1
		}
		r[tier].offer(name)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		feeds := tx.Bucket(bFeeds)
		if err := feeds.ForEachBucket(func(k []byte) error {
			return forEachChunk(feeds.Bucket(k), func(h chunkHeader, names [][]byte) error {
				if h.exception {
					return nil
				}
				for _, n := range names {
					for _, c := range h.cats {
						add(c, n)
					}
				}
				return nil
			})
		}); err != nil {
			return fmt.Errorf("sample entries: %w", err)
		}
		return tx.Bucket(bEntries).ForEach(func(k, v []byte) error {
			var e LocalEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("sample entries: entry %s: %w", k, err)
			}
			for _, c := range e.Categories {
				add(c, k)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(res))
	for cat, r := range res {
		names := r[0].names()
		for _, n := range r[1].names() {
			if len(names) == perCategory {
				break
			}
			names = append(names, n)
		}
		out[cat] = names
	}
	return out, nil
}

// isDomainEntry reports whether a stored entry is a domain name: not a URL
// prefix (host/path) and not an IP address.
func isDomainEntry(name []byte) bool {
	if len(name) == 0 || bytes.ContainsAny(name, "/:[") {
		return false // a URL prefix, or an IPv6 address
	}
	for _, c := range name {
		if (c < '0' || c > '9') && c != '.' {
			return true
		}
	}
	return false // digits and dots only: an IPv4 address
}

// bottomK keeps the k names with the smallest hashes seen so far, without
// duplicates, in hash order. Offers that do not make the cut cost a hash
// and a comparison, and allocate nothing.
type bottomK struct {
	k     int
	items []hashedName
}

type hashedName struct {
	hash uint64
	name string
}

func (b *bottomK) offer(name []byte) {
	sum := fnv64a(name)
	if len(b.items) == b.k && sum >= b.items[len(b.items)-1].hash {
		return
	}
	i, _ := slices.BinarySearchFunc(b.items, sum, func(e hashedName, t uint64) int {
		switch {
		case e.hash < t:
			return -1
		case e.hash > t:
			return 1
		}
		return 0
	})
	// The same name from another feed has the same hash: look among equals.
	for j := i; j < len(b.items) && b.items[j].hash == sum; j++ {
		if b.items[j].name == string(name) {
			return
		}
	}
	b.items = slices.Insert(b.items, i, hashedName{sum, string(name)})
	if len(b.items) > b.k {
		b.items = b.items[:b.k]
	}
}

// fnv64a is FNV-1a, written out because hash/fnv's hasher escapes to the
// heap, and this runs once for every stored entry.
func fnv64a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func (b *bottomK) names() []string {
	out := make([]string, len(b.items))
	for i, it := range b.items {
		out[i] = it.name
	}
	return out
}

// SelftestRecord is what the audit trail keeps of one self-test run.
type SelftestRecord struct {
	Report    string   `json:"report"` // the report file written
	Probes    int      `json:"probes"`
	Passed    int      `json:"passed"`
	Failed    int      `json:"failed"`
	Probed    []string `json:"probed_groups"`
	NotProbed []string `json:"not_probed_groups,omitempty"`
}

// RecordSelftest audits that a filtering self-test ran, who ran it and its
// outcome: schools keep this as the record of their yearly check.
func (s *Store) RecordSelftest(actor string, r SelftestRecord) error {
	reason := fmt.Sprintf("filtering self-test: %d of %d probes agreed with the policy", r.Passed, r.Probes)
	return s.db.Update(func(tx *bolt.Tx) error {
		return s.audit(tx, actor, "selftest", r.Report, nil, r, reason)
	})
}
