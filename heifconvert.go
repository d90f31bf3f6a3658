package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
)

// heifPicturesOf walks the HEIC or AVIF f (media.WalkHEIF): its pictures as heif-convert will decode
// them, or the refusal of a file whose structure is damaged (400) or that holds a picture in a
// codec this server cannot size (415).
func heifPicturesOf(f *os.File, typ string) (media.HEIFPictures, error) {
	fi, err := f.Stat()
	if err != nil {
		return media.HEIFPictures{}, err
	}
	pics, err := media.WalkHEIF(f, fi.Size())
	switch {
	case errors.Is(err, media.ErrHEIFCodec):
		return media.HEIFPictures{}, unsupportedMedia("image: the %s holds %v, which this server does not decode; send a JPEG or PNG", typeName(typ), err)
	case errors.Is(err, media.ErrHEIFDamaged):
		return media.HEIFPictures{}, unreadableImage(typ, err)
	}
	return pics, err
}

// heifMaxPictures bounds the top-level pictures of a HEIC or AVIF, each of which heif-convert
// decodes and writes to a file of its own (~3 ms of CPU for each 320×240 picture, so 3 s for a
// thousand, which a file can name within the pixel budget). A photo from a phone or a camera has
// one, its thumbnails and depth map aside; Nokia's HEIF conformance files, collections and bursts
// included, hold at most 11.
const heifMaxPictures = 16

// heifPicturesAt is heifPicturesOf the HEIC or AVIF at path.
func heifPicturesAt(path, typ string) (media.HEIFPictures, error) {
	f, err := os.Open(path)
	if err != nil {
		return media.HEIFPictures{}, err
	}
	defer f.Close()
	return heifPicturesOf(f, typ)
}

// heifBudget refuses, before heif-convert ever starts, the pictures pics of a HEIC or AVIF (of
// type typ) when heif-convert would decode too much of them: more than heifMaxPictures top-level
// pictures, or pictures (their tiles and alpha planes counted, by coded size) over maxPixels in all.
// heif-convert decodes and writes every top-level picture, though vidgen keeps only the primary, and
// any number of them may point at one bitstream: the total is what one accepted picture may cost.
func heifBudget(pics media.HEIFPictures, typ string) error {
	if pics.Count <= heifMaxPictures && pics.Pixels <= maxPixels {
		return nil
	}
	noun := "pictures"
	if pics.Count == 1 {
		noun = "picture"
	}
	return badMedia("image: the %s holds %d %s of %.1f megapixels in all (%d pixels, tiles and alpha planes counted), all of which would be decoded; "+
		"at most %d pictures of %d megapixels in all are accepted: export the picture you want alone as JPEG or PNG and upload that",
		typeName(typ), pics.Count, noun, float64(pics.Pixels)/1e6, pics.Pixels, heifMaxPictures, maxPixels/1_000_000)
}

// convertHEIF replaces the HEIC or AVIF at path, whose pictures inspectImage found (pics, within
// heifBudget), with a PNG of its primary picture, made by
// heif-convert (Debian's libheif-examples), which applies the picture's rotation and mirroring.
// ffmpeg 5.1 cannot read HEIF, so without heif-convert these are a 415 that says so. heif-convert
// writes a file for every top-level picture (OUT-1.png, OUT-2.png… when there are several, in the
// order media.WalkHEIF gives them): it writes into a directory of its own, next to the upload and removed
// afterwards whatever happened, and the primary's file takes the upload's place.
func convertHEIF(ctx context.Context, t ffmpeg.Tools, path, typ string, pics media.HEIFPictures) error {
	lacking := unsupportedMedia("image: %s images are not supported on this server (it lacks heif-convert); send a JPEG or PNG", typeName(typ))
	if t.HeifConvert == "" {
		return lacking
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), filepath.Base(path)+".heif-")
	if diskFull(err) {
		return lowDisk(err)
	}
	if err != nil {
		return fmt.Errorf("heif-convert's directory: %w", err)
	}
	defer os.RemoveAll(dir)
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var msg bytes.Buffer
	cmd := exec.CommandContext(hctx, t.HeifConvert, path, filepath.Join(dir, "picture.png"))
	cmd.Stdout, cmd.Stderr = &msg, &msg
	err = t.Run(hctx, cmd)
	var exit *exec.ExitError
	var fe *ffmpeg.Error
	switch {
	case err == nil:
		primary, err := heifPrimaryFile(dir, pics, msg.Bytes(), typ)
		if err != nil {
			return err
		}
		if err := decodedSize(primary); err != nil {
			return err
		}
		return os.Rename(primary, path)
	case ctx.Err() != nil:
		return ctx.Err() // the client went away
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
		return lacking // the default -heif-convert on a server without libheif-examples
	case errors.As(err, &fe) && fe.Reason == ffmpeg.NotStarted:
		return toolFailed(fe.Tool, fe.Err) // the server's trouble, not the file's
	case !errors.As(err, &exit):
		return err
	case hctx.Err() != nil:
		return badMedia("image: the %s could not be decoded within a minute; export it again as JPEG and upload it", typeName(typ))
	}
	return badMedia("image: the %s could not be decoded (%s); export it again as JPEG and upload it", typeName(typ), lastLine(msg.Bytes()))
}

// heifPrimaryFile is the file heif-convert wrote in dir for the primary picture of a HEIC or AVIF
// of pictures pics: picture.png when the file has one top-level picture, else picture-N.png, N its
// place among them from 1 (media.WalkHEIF). Should heif-convert write other files than media.WalkHEIF foresaw
// (a libheif counting pictures its own way), none is taken: which is the primary would be a guess.
func heifPrimaryFile(dir string, pics media.HEIFPictures, msg []byte, typ string) (string, error) {
	name := func(i int) string {
		if pics.Count == 1 {
			return "picture.png"
		}
		return fmt.Sprintf("picture-%d.png", i+1)
	}
	var want, got []string
	for i := range pics.Count {
		want = append(want, name(i))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(want)
	slices.Sort(got)
	switch {
	case slices.Equal(got, want):
		return filepath.Join(dir, name(pics.Primary)), nil
	case bytes.Contains(msg, []byte("could not write")): // heif-convert's words when it could not write a PNG
		return "", fmt.Errorf("heif-convert: %s", lastLine(msg))
	}
	return "", badMedia("image: the %s's pictures could not be told apart (heif-convert made %d files, where %d were expected); export the picture again as JPEG and upload it",
		typeName(typ), len(got), len(want))
}

// decodedSize holds heif-convert's PNG at path to maxPixels: inspectImage has held the file's largest
// coded size to it before the decode, and this is the decoder's own word on what it made, before
// ffprobe and the render read it.
func decodedSize(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(bufio.NewReader(f))
	if err != nil {
		return fmt.Errorf("heif-convert's PNG: %w", err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return tooManyPixels(cfg.Width, cfg.Height)
	}
	return nil
}
