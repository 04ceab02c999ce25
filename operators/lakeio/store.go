// Package lakeio is the storage library the lake sink and source share: where
// a lake lives (a local folder or an S3-compatible bucket, through
// gocloud.dev/blob's s3blob), how its files are laid out (Hive-style
// partition folders, file names from source positions, the commit records
// under _flowrun/) and how a file is committed atomically (a temporary name
// renamed into place, or an upload that becomes visible only when complete).
package lakeio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"
)

// S3Options are the settings of an s3:// location. Empty fields fall back to
// the usual AWS environment variables and files (AWS_REGION,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_S3, ...).
type S3Options struct {
	Endpoint  string // e.g. http://127.0.0.1:8333; empty: AWS
	Region    string // default us-east-1
	PathStyle bool   // bucket in the path, not the host name (SeaweedFS, MinIO)
	AccessKey string
	SecretKey string
	// PartSize is the multipart upload part size (default 5 MiB); an
	// upload holds one part in memory.
	PartSize int
}

// Entry is one listed object or folder (key relative to the store's root).
type Entry struct {
	Key     string
	Dir     bool // a common prefix ("dt=2026-11-25/")
	Size    int64
	ModTime time.Time
}

// File is an object opened for random access (Parquet reads its footer first).
type File interface {
	io.ReaderAt
	io.ReadSeeker
	io.Closer
	Size() int64
}

// Upload is an object being written under a temporary name. Its final key
// is chosen at Commit (a file's name holds the last offset it covers, known
// only when it is closed), and nothing is visible under that key until
// Commit returns nil; Abort (or a crash) leaves nothing a reader lists.
type Upload interface {
	io.Writer
	Commit(ctx context.Context, key string) error
	Abort() error
	Written() int64
}

// Store is a lake's storage: keys are slash-separated paths under its root.
type Store interface {
	// Create starts an upload whose final key will be in folder dir.
	Create(ctx context.Context, dir string) (Upload, error)
	Open(ctx context.Context, key string) (File, error)
	// List returns the entries directly under prefix (which ends in "/" or
	// is ""), folders as Dir entries, sorted by key.
	List(ctx context.Context, prefix string) ([]Entry, error)
	// Exists reports whether key is a committed object.
	Exists(ctx context.Context, key string) (bool, error)
	Delete(ctx context.Context, key string) error
	// CleanUploads removes uploads left (by a crash) in folder dir that
	// were last written before before; it returns how many.
	CleanUploads(ctx context.Context, dir string, before time.Time) (int, error)
	// URL is the location for messages ("out/lake", "s3://b/prefix").
	URL() string
	Close() error
}

// Open returns the store at location: a folder path or s3://bucket/prefix.
func Open(ctx context.Context, location string, o S3Options) (Store, error) {
	if strings.HasPrefix(location, "s3://") {
		return openS3(ctx, location, o)
	}
	if strings.Contains(location, "://") {
		return nil, fmt.Errorf("lake location %q: only a folder or s3://bucket/prefix is supported", location)
	}
	return &localStore{root: filepath.Clean(location), display: location}, nil
}

// IsTemp reports whether a file name is an upload in progress (or left by a
// crash): readers skip these.
func IsTemp(name string) bool { return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") }

// ---- local folder ----

type localStore struct{ root, display string }

func (s *localStore) URL() string  { return s.display }
func (s *localStore) Close() error { return nil }

func (s *localStore) path(key string) string {
	return filepath.Join(s.root, filepath.FromSlash(key))
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type localUpload struct {
	s    *localStore
	f    *os.File
	tmp  string
	n    int64
	done bool
}

func (s *localStore) Create(ctx context.Context, dir string) (Upload, error) {
	d := s.path(dir)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	// A leading dot hides the temporary file from readers and globs; it
	// sits in the final folder so the commit is a rename.
	tmp := filepath.Join(d, ".upload-"+randHex(8)+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &localUpload{s: s, f: f, tmp: tmp}, nil
}

func (u *localUpload) Write(p []byte) (int, error) {
	n, err := u.f.Write(p)
	u.n += int64(n)
	return n, err
}

func (u *localUpload) Written() int64 { return u.n }

// Commit syncs the data, renames the file into place and syncs the folder,
// so a committed file survives a crash of the machine, not only the process.
func (u *localUpload) Commit(ctx context.Context, key string) error {
	dst := u.s.path(key)
	if u.done {
		return errors.New("lake: upload already finished")
	}
	u.done = true
	err := u.f.Sync()
	if cerr := u.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(u.tmp, dst)
	}
	if err != nil {
		os.Remove(u.tmp)
		return err
	}
	if d, derr := os.Open(filepath.Dir(dst)); derr == nil {
		err = d.Sync()
		d.Close()
	}
	return err
}

func (u *localUpload) Abort() error {
	if u.done {
		return nil
	}
	u.done = true
	u.f.Close()
	return os.Remove(u.tmp)
}

type localFile struct{ *os.File }

func (f localFile) Size() int64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return st.Size()
}

func (s *localStore) Open(ctx context.Context, key string) (File, error) {
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, err
	}
	return localFile{f}, nil
}

func (s *localStore) List(ctx context.Context, prefix string) ([]Entry, error) {
	des, err := os.ReadDir(s.path(prefix))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(des))
	for _, d := range des {
		e := Entry{Key: prefix + d.Name(), Dir: d.IsDir()}
		if e.Dir {
			e.Key += "/"
		} else if info, err := d.Info(); err == nil {
			e.Size, e.ModTime = info.Size(), info.ModTime()
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *localStore) Exists(ctx context.Context, key string) (bool, error) {
	_, err := os.Stat(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (s *localStore) Delete(ctx context.Context, key string) error {
	err := os.Remove(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// ---- S3 ----

type s3Store struct {
	b        *blob.Bucket
	prefix   string // "" or "a/b/"
	display  string
	partSize int
}

func openS3(ctx context.Context, location string, o S3Options) (Store, error) {
	u, err := url.Parse(location)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("lake location %q: want s3://bucket/prefix", location)
	}
	region := o.Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = "us-east-1"
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if o.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKey, o.SecretKey, "")))
	} else if os.Getenv("AWS_ACCESS_KEY_ID") == "" && o.Endpoint != "" {
		// A private endpoint without credentials: anonymous requests
		// (SeaweedFS in tests) instead of a lookup of instance metadata.
		opts = append(opts, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("lake %s: AWS configuration: %w", location, err)
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle || o.Endpoint != ""
		// Third-party stores do not all accept the newer default checksums.
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	b, err := s3blob.OpenBucket(ctx, client, u.Host, nil)
	if err != nil {
		return nil, err
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	ps := o.PartSize
	if ps <= 0 {
		ps = 5 << 20
	}
	return &s3Store{b: b, prefix: prefix, display: location, partSize: ps}, nil
}

func (s *s3Store) URL() string  { return s.display }
func (s *s3Store) Close() error { return s.b.Close() }

type s3Upload struct {
	s      *s3Store
	w      *blob.Writer
	tmp    string
	cancel context.CancelFunc
	n      int64
	done   bool
}

// TempDir is where S3 uploads go before they are copied to their final key
// (S3 has no rename); readers never look there.
const TempDir = "_flowrun/tmp/"

func (s *s3Store) Create(ctx context.Context, dir string) (Upload, error) {
	// The upload outlives the call that starts it; Abort cancels it.
	uctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	tmp := s.prefix + TempDir + randHex(8) + ".tmp"
	w, err := s.b.NewWriter(uctx, tmp, &blob.WriterOptions{
		ContentType: "application/vnd.apache.parquet", BufferSize: s.partSize, MaxConcurrency: 1,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	return &s3Upload{s: s, w: w, tmp: tmp, cancel: cancel}, nil
}

func (u *s3Upload) Write(p []byte) (int, error) {
	n, err := u.w.Write(p)
	u.n += int64(n)
	return n, err
}

func (u *s3Upload) Written() int64 { return u.n }

// Commit completes the upload under its temporary key, copies it to key
// (a server-side copy: the object appears whole or not at all) and deletes
// the temporary object.
func (u *s3Upload) Commit(ctx context.Context, key string) error {
	if u.done {
		return errors.New("lake: upload already finished")
	}
	u.done = true
	defer u.cancel()
	if err := u.w.Close(); err != nil {
		return err
	}
	if err := u.s.b.Copy(ctx, u.s.prefix+key, u.tmp, nil); err != nil {
		u.s.b.Delete(context.WithoutCancel(ctx), u.tmp)
		return err
	}
	return u.s.b.Delete(ctx, u.tmp)
}

// Abort cancels the upload (a multipart upload is aborted): nothing appears.
func (u *s3Upload) Abort() error {
	if u.done {
		return nil
	}
	u.done = true
	u.cancel()
	_ = u.w.Close()
	return nil
}

type s3File struct {
	*io.SectionReader
	ra *rangeReaderAt
}

func (f s3File) Close() error { return nil }

type rangeReaderAt struct {
	ctx context.Context
	b   *blob.Bucket
	key string
}

func (r *rangeReaderAt) ReadAt(p []byte, off int64) (int, error) {
	rd, err := r.b.NewRangeReader(r.ctx, r.key, off, int64(len(p)), nil)
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	n, err := io.ReadFull(rd, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

func (s *s3Store) Open(ctx context.Context, key string) (File, error) {
	attrs, err := s.b.Attributes(ctx, s.prefix+key)
	if err != nil {
		return nil, err
	}
	ra := &rangeReaderAt{ctx: ctx, b: s.b, key: s.prefix + key}
	return s3File{SectionReader: io.NewSectionReader(ra, 0, attrs.Size), ra: ra}, nil
}

func (s *s3Store) List(ctx context.Context, prefix string) ([]Entry, error) {
	it := s.b.List(&blob.ListOptions{Prefix: s.prefix + prefix, Delimiter: "/"})
	var out []Entry
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Key: strings.TrimPrefix(o.Key, s.prefix), Dir: o.IsDir, Size: o.Size, ModTime: o.ModTime})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *s3Store) Exists(ctx context.Context, key string) (bool, error) {
	return s.b.Exists(ctx, s.prefix+key)
}

func (s *s3Store) Delete(ctx context.Context, key string) error {
	err := s.b.Delete(ctx, s.prefix+key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil
	}
	return err
}

// ReadAll reads a small object whole.
func ReadAll(ctx context.Context, s Store, key string) ([]byte, error) {
	f, err := s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
}

// WriteAll writes a small object atomically: on S3 one PUT (an object
// appears whole or not at all), on a folder a synced temporary file
// renamed into place.
func WriteAll(ctx context.Context, s Store, key string, data []byte) error {
	if s3s, ok := s.(*s3Store); ok {
		return s3s.b.WriteAll(ctx, s3s.prefix+key, data, &blob.WriterOptions{ContentType: "application/json"})
	}
	dir := path.Dir(key) + "/"
	if dir == "./" {
		dir = ""
	}
	u, err := s.Create(ctx, dir)
	if err != nil {
		return err
	}
	if _, err := u.Write(data); err != nil {
		u.Abort()
		return err
	}
	return u.Commit(ctx, key)
}

// Base is the last element of a key.
func Base(key string) string { return path.Base(strings.TrimSuffix(key, "/")) }

func (s *localStore) CleanUploads(ctx context.Context, dir string, before time.Time) (int, error) {
	ents, err := s.List(ctx, dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		b := Base(e.Key)
		if !e.Dir && strings.HasPrefix(b, ".upload-") && e.ModTime.Before(before) {
			if err := s.Delete(ctx, e.Key); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// CleanUploads on S3 removes the temporary objects under TempDir (dir is
// ignored: uploads in progress are not listed, and a multipart upload a
// crash abandoned is for the bucket's lifecycle rule to abort).
func (s *s3Store) CleanUploads(ctx context.Context, dir string, before time.Time) (int, error) {
	ents, err := s.List(ctx, TempDir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if !e.Dir && e.ModTime.Before(before) {
			if err := s.Delete(ctx, e.Key); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
