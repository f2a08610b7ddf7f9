// Package categories is hedgerow's decision core: the category taxonomy, the
// normalisation of names and URLs, the compiled Index of listed domains and URL
// prefixes, the age-group policies, the client-to-group mapping and Decide,
// which turns a group and a target into a verdict.
package categories

import (
	"fmt"
	"sort"
)

// Severity says how serious a category is; it drives incident triage and alerts.
type Severity uint8

// Severities, from none (allow-kind categories, which never block) to critical.
const (
	SeverityNone Severity = iota
	SeverityLow
	SeverityHigh
	SeverityCritical
)

// String returns the severity's name as used in the CLI, config and JSON.
func (s Severity) String() string {
	switch s {
	case SeverityLow:
		return "low"
	case SeverityHigh:
		return "high"
	case SeverityCritical:
		return "critical"
	}
	return "none"
}

// Kind separates categories that block from categories that only approve.
type Kind uint8

// Category kinds.
const (
	// KindBlock categories block for every group whose policy lists them.
	KindBlock Kind = iota
	// KindAllow categories never block: they mark sites as approved, for
	// groups in allowlist mode, or classify them (banking, news).
	KindAllow
)

// String returns "block" or "allow".
func (k Kind) String() string {
	if k == KindAllow {
		return "allow"
	}
	return "block"
}

// Category is one entry of the taxonomy.
type Category struct {
	ID          uint8 // bit position in a Mask; stable for the life of a binary only
	Slug        string
	Name        string
	Description string
	Severity    Severity
	Kind        Kind
}

// Mask is a set of categories, one bit per Category.ID.
type Mask uint64

// Has reports whether the set contains the category with the given ID.
func (m Mask) Has(id uint8) bool { return m&(1<<id) != 0 }

// builtin is the taxonomy. The order fixes the IDs; the slugs are what the
// store and the lists refer to, so a slug must never be renamed.
var builtin = []Category{
	// Critical: illegal content. Blocked for every group, no override. Fed by
	// the IWF and Home Office (CTIRU) lists that schools obtain through their
	// provider; hedgerow imports them like any other list, usually locked.
	{Slug: "child-abuse", Name: "Child sexual abuse content", Severity: SeverityCritical,
		Description: "Child sexual abuse material (IWF URL and domain lists). Illegal; always blocked."},
	{Slug: "terrorism", Name: "Terrorist content", Severity: SeverityCritical,
		Description: "Content listed as unlawful terrorist material (Home Office / CTIRU list). Illegal; always blocked."},

	// High: harmful or offensive content, blocked for every group by default.
	{Slug: "adult", Name: "Pornography and adult content", Severity: SeverityHigh,
		Description: "Sexually explicit material, from erotica to hard pornography."},
	{Slug: "hate", Name: "Discrimination and hate", Severity: SeverityHigh,
		Description: "Content promoting hatred or aggression against people for their protected characteristics."},
	{Slug: "drugs", Name: "Drugs and substance abuse", Severity: SeverityHigh,
		Description: "Sale, use or promotion of illegal drugs, legal highs, vaping and substance abuse."},
	{Slug: "extremism", Name: "Extremism", Severity: SeverityHigh,
		Description: "Material promoting extremist ideologies or radicalisation (Prevent duty)."},
	{Slug: "gambling", Name: "Gambling", Severity: SeverityHigh,
		Description: "Betting, casinos, lotteries and other gambling, which is illegal for under-18s."},
	{Slug: "malware", Name: "Malware, hacking and phishing", Severity: SeverityHigh,
		Description: "Sites that deliver malware, phish credentials, run scams, mine crypto in the browser, sell stalkerware or teach hacking."},
	{Slug: "piracy", Name: "Piracy and copyright theft", Severity: SeverityHigh,
		Description: "Illegal distribution of copyrighted material: warez, torrents, unlicensed streams."},
	{Slug: "self-harm", Name: "Self-harm and suicide", Severity: SeverityHigh,
		Description: "Content promoting or displaying self-harm, suicide or eating disorders."},
	{Slug: "violence", Name: "Violence", Severity: SeverityHigh,
		Description: "Graphic violence, gore and snuff material."},
	{Slug: "weapons", Name: "Weapons", Severity: SeverityHigh,
		Description: "Weapons and instructions for making bombs or other dangerous material."},
	{Slug: "circumvention", Name: "Filter circumvention", Severity: SeverityHigh,
		Description: "Web proxies, VPNs, DNS-over-HTTPS resolvers and search engines without safe search: ways round the filter."},

	// Low: unsuitable for some ages, blocked per group.
	{Slug: "social-networks", Name: "Social networks", Severity: SeverityLow,
		Description: "Social networking sites and apps."},
	{Slug: "chat", Name: "Chat and messaging", Severity: SeverityLow,
		Description: "Chat rooms, instant messaging and messaging apps."},
	{Slug: "dating", Name: "Dating", Severity: SeverityLow,
		Description: "Dating and match-making sites."},
	{Slug: "games", Name: "Online games", Severity: SeverityLow,
		Description: "Online and downloadable games."},
	{Slug: "streaming", Name: "Streaming and video", Severity: SeverityLow,
		Description: "Video, audio and radio streaming."},
	{Slug: "shopping", Name: "Shopping", Severity: SeverityLow,
		Description: "Online shops and marketplaces."},
	{Slug: "webmail", Name: "Webmail", Severity: SeverityLow,
		Description: "Web-based e-mail services."},
	{Slug: "filehosting", Name: "File hosting", Severity: SeverityLow,
		Description: "File sharing and hosting services for pictures, video and other files."},
	{Slug: "advertising", Name: "Advertising", Severity: SeverityLow,
		Description: "Advertising networks and aggressive marketing."},
	{Slug: "mature", Name: "Mature content", Severity: SeverityLow,
		Description: "Not pornography, but not for children: lingerie, sites with unstructured adult sections."},
	{Slug: "ai", Name: "AI chatbots and generators", Severity: SeverityLow,
		Description: "Generative AI services, which many of them restrict to over-13s or over-18s."},
	{Slug: "forums", Name: "Forums", Severity: SeverityLow,
		Description: "Discussion forums and message boards."},
	{Slug: "misinformation", Name: "Misinformation", Severity: SeverityLow,
		Description: "Sites known for publishing fake news."},
	{Slug: "cheating", Name: "Exam cheating", Severity: SeverityLow,
		Description: "Sites that explain how to cheat in exams."},
	{Slug: "remote-access", Name: "Remote access", Severity: SeverityLow,
		Description: "Remote desktop services that can control another computer (and route round the filter)."},
	{Slug: "dynamic-dns", Name: "Dynamic DNS", Severity: SeverityLow,
		Description: "Dynamic DNS providers, often used to reach home proxies and by malware."},
	{Slug: "cryptocurrency", Name: "Cryptocurrency", Severity: SeverityLow,
		Description: "Cryptocurrency mining and trading."},
	{Slug: "url-shorteners", Name: "URL shorteners", Severity: SeverityLow,
		Description: "Link shorteners, which hide where a link goes."},

	// Allow kind: never block. Approved lists for allowlist-mode groups and
	// classifications that later features use (banking is not intercepted).
	{Slug: "kids", Name: "Approved for young children", Kind: KindAllow,
		Description: "Sites suitable for children under ten and educational games: the approved list for allowlist-mode groups."},
	{Slug: "education", Name: "Education", Kind: KindAllow,
		Description: "Educational sites and translation tools."},
	{Slug: "news", Name: "News", Kind: KindAllow,
		Description: "Press and news sites."},
	{Slug: "banking", Name: "Banking", Kind: KindAllow,
		Description: "Online banks."},
	{Slug: "software", Name: "Software and updates", Kind: KindAllow,
		Description: "Software downloads, operating-system updates and security tools."},
	{Slug: "sex-education", Name: "Sex education", Kind: KindAllow,
		Description: "Sex and relationships education, which word-based filters often mistake for pornography."},
}

// Taxonomy is the set of categories hedgerow knows. It is immutable.
type Taxonomy struct {
	cats   []Category
	bySlug map[string]*Category
}

// Builtin returns the built-in taxonomy.
func Builtin() *Taxonomy {
	t := &Taxonomy{cats: make([]Category, len(builtin)), bySlug: make(map[string]*Category, len(builtin))}
	copy(t.cats, builtin)
	for i := range t.cats {
		t.cats[i].ID = uint8(i)
		t.bySlug[t.cats[i].Slug] = &t.cats[i]
	}
	return t
}

// All returns every category in taxonomy order.
func (t *Taxonomy) All() []Category { return t.cats }

// Lookup returns the category with the given slug.
func (t *Taxonomy) Lookup(slug string) (*Category, bool) {
	c, ok := t.bySlug[slug]
	return c, ok
}

// ByID returns the category with the given ID; IDs come from a Mask.
func (t *Taxonomy) ByID(id uint8) *Category { return &t.cats[id] }

// MaskOf turns slugs into a Mask. An unknown slug is an error that lists the
// known ones, so a typo on the command line is easy to fix.
func (t *Taxonomy) MaskOf(slugs ...string) (Mask, error) {
	var m Mask
	for _, s := range slugs {
		c, ok := t.bySlug[s]
		if !ok {
			return 0, fmt.Errorf("unknown category %q (known: %s)", s, t.slugList())
		}
		m |= 1 << c.ID
	}
	return m, nil
}

// Slugs lists the slugs of a Mask in taxonomy order.
func (t *Taxonomy) Slugs(m Mask) []string {
	var out []string
	for i := range t.cats {
		if m.Has(uint8(i)) {
			out = append(out, t.cats[i].Slug)
		}
	}
	return out
}

// SeverityMask returns every block category of the given severity.
func (t *Taxonomy) SeverityMask(s Severity) Mask {
	var m Mask
	for _, c := range t.cats {
		if c.Kind == KindBlock && c.Severity == s {
			m |= 1 << c.ID
		}
	}
	return m
}

// KindMask returns every category of the given kind.
func (t *Taxonomy) KindMask(k Kind) Mask {
	var m Mask
	for _, c := range t.cats {
		if c.Kind == k {
			m |= 1 << c.ID
		}
	}
	return m
}

func (t *Taxonomy) slugList() string {
	s := make([]string, len(t.cats))
	for i, c := range t.cats {
		s[i] = c.Slug
	}
	sort.Strings(s)
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// UT1Mapping says where a UT1 blacklist category goes in hedgerow's taxonomy.
type UT1Mapping struct {
	UT1  string // UT1 directory name
	Slug string // hedgerow category; empty when ignored
	Note string // why, for ignored categories and for judgement calls
}

// UT1 maps every category of the UT1 collection (Université Toulouse 1
// Capitole) onto the taxonomy. Categories with no sensible home are ignored
// with a note rather than merged into something they are not. UT1 categories
// whose usage file says only "white" are allow lists: they map to allow-kind
// categories and never block.
var UT1 = []UT1Mapping{
	{"adult", "adult", ""},
	{"agressif", "hate", "UT1's 'aggressive' list is racist and hate sites"},
	{"ai", "ai", ""},
	{"arjel", "gambling", "French-licensed gambling operators"},
	{"associations_religieuses", "", "ignored: religious associations are not a filtering category in UK guidance"},
	{"astrology", "", "ignored: not a safeguarding category"},
	{"audio-video", "streaming", ""},
	{"bank", "banking", "allow kind: never blocks"},
	{"bitcoin", "cryptocurrency", ""},
	{"blog", "", "ignored: blocking blogs wholesale would over-block lesson material"},
	{"celebrity", "", "ignored: not a safeguarding category"},
	{"chat", "chat", ""},
	{"child", "kids", "allow list (usage: white): approved sites for young children"},
	{"cleaning", "software", "allow list (usage: white)"},
	{"cooking", "", "ignored: not a safeguarding category"},
	{"cryptojacking", "malware", ""},
	{"dangerous_material", "weapons", "bomb-making and dangerous material"},
	{"dating", "dating", ""},
	{"ddos", "malware", "DDoS-for-hire services"},
	{"dialer", "malware", ""},
	{"doh", "circumvention", "DNS-over-HTTPS resolvers bypass the DNS filter"},
	{"download", "software", "allow list (usage: white)"},
	{"drogue", "drugs", ""},
	{"dynamic-dns", "dynamic-dns", ""},
	{"educational_games", "kids", "allow list (usage: white)"},
	{"examen_pix", "", "ignored: UT1 reserves it for the French PIX exam"},
	{"exceptions_liste_bu", "", "ignored: exceptions to a French library list"},
	{"fakenews", "misinformation", ""},
	{"filehosting", "filehosting", ""},
	{"financial", "", "ignored: financial information is not a safeguarding category"},
	{"forums", "forums", ""},
	{"gambling", "gambling", ""},
	{"games", "games", ""},
	{"hacking", "malware", ""},
	{"jobsearch", "", "ignored: job search is not a safeguarding category"},
	{"lingerie", "mature", ""},
	{"liste_blanche", "", "ignored: a French allow list of local education authorities"},
	{"liste_bu", "education", "allow list (usage: white): French educational sites"},
	{"malware", "malware", ""},
	{"manga", "", "ignored: manga sites are mostly benign; the adult ones are in adult"},
	{"marketingware", "advertising", ""},
	{"mixed_adult", "mature", "sites with unstructured adult sections, not pornography as such"},
	{"mobile-phone", "", "ignored: ring tones and phone sites are not a safeguarding category"},
	{"phishing", "malware", "UT1's phishing is a copy of malware"},
	{"press", "news", "allow kind: never blocks"},
	{"publicite", "advertising", ""},
	{"radio", "streaming", ""},
	{"reaffected", "", "ignored: domains that changed owner, no category of their own"},
	{"redirector", "circumvention", "web proxies and redirectors"},
	{"remote-control", "remote-access", ""},
	{"residential-proxies", "circumvention", ""},
	{"sect", "", "ignored: follows a French government definition of sects with no UK guidance equivalent"},
	{"sexual_education", "sex-education", "allow list (usage: white)"},
	{"shopping", "shopping", ""},
	{"shortener", "url-shorteners", ""},
	{"social_networks", "social-networks", ""},
	{"special", "", "ignored: UT1's internal test list"},
	{"sports", "", "ignored: not a safeguarding category"},
	{"stalkerware", "malware", ""},
	{"strict_redirector", "", "ignored: a copy of redirector whose URL entries also block search engines' image search for everyone"},
	{"strong_redirector", "", "ignored: a copy of redirector with search-engine keyword rules hedgerow cannot express"},
	{"translation", "education", "allow list (usage: white)"},
	{"tricheur", "cheating", ""},
	{"tricheur_pix", "", "ignored: UT1 says not to use it outside the French PIX exam"},
	{"update", "software", "allow list (usage: white)"},
	{"vpn", "circumvention", ""},
	{"warez", "piracy", ""},
	{"webhosting", "", "ignored: web hosting companies are not a safeguarding category"},
	{"webmail", "webmail", ""},
}

// UT1Category returns the hedgerow slug for a UT1 category directory, with
// ok false when the category is unknown to the table; an empty slug with ok
// true means the category is deliberately ignored.
func UT1Category(dir string) (slug string, ok bool) {
	for _, m := range UT1 {
		if m.UT1 == dir {
			return m.Slug, true
		}
	}
	return "", false
}
