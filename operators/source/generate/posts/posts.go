// Package posts generates synthetic Pinterest posts with the shapes and
// dirty-value rates of docs/pinterest.md: placeholders such as "User Info
// Error", follower counts like "1.2k", truncated descriptions, emoji titles,
// duplicate ids and the odd record missing its unique_id or category.
//
// A Generator is seeded and deterministic: the same seed yields the same
// posts, byte for byte, so tests and benchmarks are repeatable. It is used
// by the "generate" source and by the ingest emulator. A Generator is not
// safe for concurrent use; give each goroutine its own.
//
// Producers vary: the JSON form (AppendJSON) writes fields in a varying
// order and occasionally adds an unknown extra field. The key "index" is
// always written as "index" (never the "ind" some producers use) because the
// declared pipeline schema needs one name for it.
package posts

import (
	"math/rand/v2"
	"strconv"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Placeholders producers write instead of real values.
const (
	NoTitle            = "No Title Data Available"
	NoDescriptionStory = "No description available Story format"
	NoDescription      = "No description available"
	UserInfoError      = "User Info Error"
	NoTags             = "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e"
	MultiVideo         = "multi-video(story page format)"
	ImageSrcError      = "Image src error."
	SaveLocationPrefix = "Local save in "
)

// Categories are the 13 post categories.
var Categories = []string{"art", "beauty", "christmas", "diy-and-crafts", "education", "event-planning", "finance", "home-decor", "mens-fashion", "quotes", "tattoos", "travel", "vehicles"}

// Field names in canonical order; the order of Schema's columns.
var Fields = []string{"index", "unique_id", "title", "description", "poster_name", "follower_count", "tag_list", "is_image_or_video", "image_src", "downloaded", "save_location", "category"}

// Column indexes of Schema.
const (
	ColIndex = iota
	ColUniqueID
	ColTitle
	ColDescription
	ColPosterName
	ColFollowerCount
	ColTagList
	ColIsImageOrVideo
	ColImageSrc
	ColDownloaded
	ColSaveLocation
	ColCategory
	NumCols
)

// Schema is the Arrow schema of a raw post: every field a nullable string
// except index and downloaded (int64).
func Schema() *arrow.Schema { return schema }

var schema = func() *arrow.Schema {
	fs := make([]arrow.Field, len(Fields))
	for i, n := range Fields {
		fs[i] = arrow.Field{Name: n, Type: arrow.BinaryTypes.String, Nullable: true}
	}
	fs[ColIndex].Type = arrow.PrimitiveTypes.Int64
	fs[ColDownloaded].Type = arrow.PrimitiveTypes.Int64
	return arrow.NewSchema(fs, nil)
}()

// Post is one raw post as a producer sends it.
type Post struct {
	Index          int64
	UniqueID       string
	Title          string
	Description    string
	PosterName     string
	FollowerCount  string
	TagList        string
	IsImageOrVideo string
	ImageSrc       string
	Downloaded     int64
	SaveLocation   string
	Category       string

	// MissingUniqueID and MissingCategory mark a record sent without that
	// key (JSON omits it, Arrow holds null); such posts belong in dead letters.
	MissingUniqueID bool
	MissingCategory bool
	// ExtraKey/ExtraValue, when ExtraKey is set, are an unknown field the
	// producer added; only AppendJSON writes it.
	ExtraKey, ExtraValue string
	// Order is the order AppendJSON writes the fields in (indexes into Fields).
	Order [NumCols]uint8
}

// Generator draws posts from a seeded random source.
type Generator struct {
	rng    *rand.Rand
	recent [256]string // recent unique ids, for duplicates
	nrec   int
	buf    []byte
}

// New returns a generator; equal seeds give equal sequences.
func New(seed int64) *Generator {
	return &Generator{rng: rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))}
}

func (g *Generator) chance(p float64) bool { return g.rng.Float64() < p }

func (g *Generator) pick(list []string) string { return list[g.rng.IntN(len(list))] }

// Next fills p with the next post, reusing p's storage where it can.
func (g *Generator) Next(p *Post) {
	r := g.rng
	*p = Post{Order: p.Order}
	p.Index = int64(r.IntN(11500))
	cat := g.pick(Categories)

	// ~1% duplicate ids, drawn from recently generated ones.
	if g.nrec > 0 && g.chance(0.01) {
		n := min(g.nrec, len(g.recent))
		p.UniqueID = g.recent[r.IntN(n)]
	} else {
		p.UniqueID = g.uuid()
		g.recent[g.nrec%len(g.recent)] = p.UniqueID
		g.nrec++
	}

	p.Title = g.title()
	p.Description = g.description()
	p.PosterName = g.name()
	p.FollowerCount = g.followers()
	p.TagList = g.tags(cat)
	p.IsImageOrVideo = "image"
	if g.chance(0.25) {
		p.IsImageOrVideo = "video"
	}
	p.ImageSrc = g.imageURL(p.IsImageOrVideo == "video")
	p.Downloaded = 1
	p.SaveLocation = SaveLocationPrefix + "/data/" + cat
	p.Category = cat

	// About 7% of rows carry one or more placeholders.
	if g.chance(0.07) {
		kinds := 1 + r.IntN(3)
		for range kinds {
			switch r.IntN(7) {
			case 0:
				p.Title = NoTitle
			case 1:
				if g.chance(0.5) {
					p.Description = NoDescriptionStory
				} else {
					p.Description = NoDescription
				}
			case 2:
				p.PosterName, p.FollowerCount = UserInfoError, UserInfoError
			case 3:
				p.TagList = NoTags
			case 4:
				p.IsImageOrVideo = MultiVideo
				p.Description = NoDescriptionStory
			case 5:
				p.ImageSrc, p.Downloaded = ImageSrcError, 0
			case 6:
				// Literal "null" or empty strings also occur.
				if g.chance(0.5) {
					p.Title = "null"
				} else {
					p.PosterName = ""
				}
			}
		}
	}
	// ~0.5% records lack unique_id or category.
	if g.chance(0.005) {
		if g.chance(0.5) {
			p.MissingUniqueID = true
			p.UniqueID = ""
		} else {
			p.MissingCategory = true
			p.Category = ""
		}
	}
	if g.chance(0.01) {
		p.ExtraKey = g.pick([]string{"scraped_by", "event_time", "lang", "board"})
		p.ExtraValue = g.pick([]string{"bot-3", "2023-01-02T03:04:05Z", "en", "favourites"})
	}
	for i := range p.Order {
		p.Order[i] = uint8(i)
	}
	// Most producers use the canonical order; ~30% send their own.
	if g.chance(0.3) {
		r.Shuffle(NumCols, func(i, j int) { p.Order[i], p.Order[j] = p.Order[j], p.Order[i] })
	}
}

func (g *Generator) uuid() string {
	var b [16]byte
	a, c := g.rng.Uint64(), g.rng.Uint64()
	for i := range 8 {
		b[i] = byte(a >> (8 * i))
		b[8+i] = byte(c >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, x := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[x>>4], hex[x&15])
	}
	return string(out)
}

var words = []string{"easy", "ideas", "simple", "beautiful", "diy", "home", "art", "painting", "watercolor", "drawing", "makeup", "hair", "nails", "winter", "christmas", "tree", "decor", "gift", "craft", "kids", "school", "learning", "party", "wedding", "budget", "money", "saving", "tips", "living", "room", "kitchen", "style", "outfit", "men", "fashion", "quotes", "life", "love", "tattoo", "small", "travel", "europe", "beach", "road", "trip", "car", "vintage", "modern", "best", "inspiration", "creative", "cozy", "minimal", "bold", "colour", "design", "project", "weekend", "guide", "the", "for", "and", "with", "your", "to", "of", "a", "in"}

var flair = []string{"✨", "🎄", "❤️", "🌸", "🔥", "😍", "café", "naïve", "Zürich", "São Paulo", "こんにちは", "Ελλάδα", "crème brûlée", "fiancée", "🚗", "💄"}

func (g *Generator) sentence(min, max int) []byte {
	n := min + g.rng.IntN(max-min+1)
	b := g.buf[:0]
	for i := range n {
		if i > 0 {
			b = append(b, ' ')
		}
		w := g.pick(words)
		if i == 0 {
			b = append(b, w[0]-32)
			w = w[1:]
		}
		b = append(b, w...)
	}
	g.buf = b
	return b
}

func (g *Generator) title() string {
	b := g.sentence(3, 9)
	if g.chance(0.2) {
		b = append(b, ' ')
		b = append(b, g.pick(flair)...)
	}
	g.buf = b
	return string(b)
}

func (g *Generator) description() string {
	b := g.sentence(34, 64)
	if g.chance(0.15) {
		b = append(b, ' ')
		b = append(b, g.pick(flair)...)
	}
	b = append(b, '.')
	// A third are cut off by the scraper: text, an ellipsis and a NBSP.
	if g.chance(1.0 / 3) {
		cut := len(b) * (50 + g.rng.IntN(40)) / 100
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		b = append(b[:cut], "…\u00a0"...)
	}
	g.buf = b
	return string(b)
}

var firstNames = []string{"Anna", "Ben", "Chloé", "Dmitri", "Emma", "Farah", "George", "Hana", "Ivan", "Julia", "Kenji", "Lea", "Mateo", "Noor", "Olivia", "Priya"}
var lastNames = []string{"Smith", "García", "Müller", "Rossi", "Kowalski", "Nguyen", "Brown", "Tanaka", "Dubois", "Silva", "Designs", "Studio", "Crafts", "Blog"}

func (g *Generator) name() string { return g.pick(firstNames) + " " + g.pick(lastNames) }

func (g *Generator) followers() string {
	r := g.rng
	switch x := r.IntN(100); {
	case x < 40:
		return strconv.Itoa(r.IntN(1000))
	case x < 60:
		// decimals: 1.2k
		return strconv.Itoa(1+r.IntN(9)) + "." + strconv.Itoa(1+r.IntN(9)) + "k"
	case x < 85:
		return strconv.Itoa(10+r.IntN(990)) + "k"
	case x < 93:
		return strconv.Itoa(1+r.IntN(20)) + "M"
	default:
		return strconv.Itoa(1+r.IntN(9)) + "." + strconv.Itoa(r.IntN(10)) + "M"
	}
}

func (g *Generator) tags(cat string) string {
	n := 6 + g.rng.IntN(7)
	b := g.buf[:0]
	b = append(b, cat...)
	for range n - 1 {
		b = append(b, ',')
		w := g.pick(words)
		b = append(b, w[0]-32)
		b = append(b, w[1:]...)
		b = append(b, g.pick([]string{"", " Ideas", " Art", " Diy", " Decor", " Quotes", " Style"})...)
	}
	g.buf = b
	return string(b)
}

func (g *Generator) imageURL(video bool) string {
	const hex = "0123456789abcdef"
	var h [32]byte
	x, y := g.rng.Uint64(), g.rng.Uint64()
	for i := range 16 {
		h[i] = hex[(x>>(4*i))&15]
		h[16+i] = hex[(y>>(4*i))&15]
	}
	s := string(h[:])
	if video {
		return "https://i.pinimg.com/videos/thumbnails/originals/" + s[:2] + "/" + s[2:4] + "/" + s[4:6] + "/" + s + ".0000001.jpg"
	}
	return "https://i.pinimg.com/originals/" + s[:2] + "/" + s[2:4] + "/" + s[4:6] + "/" + s + ".jpg"
}

// AppendJSON appends p as one JSON object (no newline) in p.Order, adding
// p's extra field at the end when it has one.
func AppendJSON(dst []byte, p *Post) []byte {
	dst = append(dst, '{')
	first := true
	key := func(k string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, k...)
		dst = append(dst, '"', ':')
	}
	for _, f := range p.Order {
		switch int(f) {
		case ColIndex:
			key("index")
			dst = strconv.AppendInt(dst, p.Index, 10)
		case ColDownloaded:
			key("downloaded")
			dst = strconv.AppendInt(dst, p.Downloaded, 10)
		case ColUniqueID:
			if !p.MissingUniqueID {
				key("unique_id")
				dst = appendString(dst, p.UniqueID)
			}
		case ColCategory:
			if !p.MissingCategory {
				key("category")
				dst = appendString(dst, p.Category)
			}
		default:
			key(Fields[f])
			dst = appendString(dst, p.str(int(f)))
		}
	}
	if p.ExtraKey != "" {
		key(p.ExtraKey)
		dst = appendString(dst, p.ExtraValue)
	}
	return append(dst, '}')
}

func (p *Post) str(col int) string {
	switch col {
	case ColUniqueID:
		return p.UniqueID
	case ColTitle:
		return p.Title
	case ColDescription:
		return p.Description
	case ColPosterName:
		return p.PosterName
	case ColFollowerCount:
		return p.FollowerCount
	case ColTagList:
		return p.TagList
	case ColIsImageOrVideo:
		return p.IsImageOrVideo
	case ColImageSrc:
		return p.ImageSrc
	case ColSaveLocation:
		return p.SaveLocation
	case ColCategory:
		return p.Category
	}
	return ""
}

func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// AppendTo generates the next post and appends it as one row to b, whose
// schema must start with Schema()'s columns (extra trailing columns are left
// to the caller).
func (g *Generator) AppendTo(b *array.RecordBuilder) {
	var p Post
	g.Next(&p)
	AppendPost(b, &p)
}

// AppendPost appends p as one row to the first NumCols builders of b, in
// Schema() order; a missing unique_id or category is null.
func AppendPost(b *array.RecordBuilder, p *Post) {
	b.Field(ColIndex).(*array.Int64Builder).Append(p.Index)
	b.Field(ColDownloaded).(*array.Int64Builder).Append(p.Downloaded)
	for c := range NumCols {
		if c == ColIndex || c == ColDownloaded {
			continue
		}
		sb := b.Field(c).(*array.StringBuilder)
		if (c == ColUniqueID && p.MissingUniqueID) || (c == ColCategory && p.MissingCategory) {
			sb.AppendNull()
			continue
		}
		sb.Append(p.str(c))
	}
}
