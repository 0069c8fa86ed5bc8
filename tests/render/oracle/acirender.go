// acirender: runs appc's reference renderer (github.com/appc/spec/pkg/acirenderer, from
// Debian's golang-github-appc-spec-dev) over a directory of uncompressed ACIs and prints, as
// JSON, the files it picks from each image: [{"key": "sha512-…", "files": ["rootfs/…", …]}, …]
// in its own list order (top image first). Used by tests/render/test_reference.py as an oracle.
//
// Usage: acirender DIR TOP_IMAGE_ID
package main

import (
	"archive/tar"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/appc/spec/pkg/acirenderer"
	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

type dirRegistry struct {
	paths     map[string]string // image ID -> file
	manifests map[string]*schema.ImageManifest
	order     []string
}

func load(dir string) (*dirRegistry, error) {
	r := &dirRegistry{paths: map[string]string{}, manifests: map[string]*schema.ImageManifest{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.aci"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		h := sha512.New()
		tr := tar.NewReader(io.TeeReader(f, h))
		var im *schema.ImageManifest
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			if hdr.Name == "manifest" {
				data, err := io.ReadAll(tr)
				if err != nil {
					return nil, err
				}
				im = &schema.ImageManifest{}
				if err := im.UnmarshalJSON(data); err != nil {
					return nil, fmt.Errorf("%s: %v", p, err)
				}
			}
		}
		io.Copy(io.Discard, io.TeeReader(f, h))
		f.Close()
		key := "sha512-" + hex.EncodeToString(h.Sum(nil))
		r.paths[key] = p
		r.manifests[key] = im
		r.order = append(r.order, key)
	}
	return r, nil
}

func (r *dirRegistry) ReadStream(key string) (io.ReadCloser, error) { return os.Open(r.paths[key]) }

func (r *dirRegistry) ResolveKey(key string) (string, error) {
	for k := range r.paths {
		if strings.HasPrefix(k, key) {
			return k, nil
		}
	}
	return "", fmt.Errorf("no image %s", key)
}

func (r *dirRegistry) HashToKey(h hash.Hash) string { return "sha512-" + hex.EncodeToString(h.Sum(nil)) }

func (r *dirRegistry) GetImageManifest(key string) (*schema.ImageManifest, error) {
	im, ok := r.manifests[key]
	if !ok {
		return nil, fmt.Errorf("no image %s", key)
	}
	return im, nil
}

func (r *dirRegistry) GetACI(name types.ACIdentifier, labels types.Labels) (string, error) {
	for _, k := range r.order {
		im := r.manifests[k]
		if im.Name != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if v, found := im.Labels.Get(l.Name.String()); !found || v != l.Value {
				ok = false
			}
		}
		if ok {
			return k, nil
		}
	}
	return "", fmt.Errorf("no image named %s", name)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: acirender DIR TOP_IMAGE_ID")
		os.Exit(2)
	}
	reg, err := load(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	top, err := types.NewHash(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rendered, err := acirenderer.GetRenderedACIWithImageID(*top, reg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	type out struct {
		Key   string   `json:"key"`
		Files []string `json:"files"`
	}
	var res []out
	for _, ra := range rendered {
		files := []string{}
		for f := range ra.FileMap {
			files = append(files, f)
		}
		sort.Strings(files)
		res = append(res, out{ra.Key, files})
	}
	json.NewEncoder(os.Stdout).Encode(res)
}
