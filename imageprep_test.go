package main

// The entry points the image tests use: each reads what the upload's check (inspectImage) would
// have read, then runs the step the upload runs. The upload itself calls inspectImage and
// prepareInspected, which read each header once.

import (
	"context"
	"os"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
)

// checkImage is inspectImage, without the header it read.
func checkImage(path, typ string) error {
	_, err := inspectImage(path, typ)
	return err
}

// prepareImage is prepareInspected of the image at path, reading what of its header the step
// needs: a JPEG's markers, a PNG's end.
func prepareImage(ctx context.Context, t ffmpeg.Tools, gate decodeGate, path, typ string) (string, error) {
	var hdr imageHeader
	var err error
	switch typ {
	case media.JPEG:
		hdr.jpeg, err = readJPEGHeader(path)
	case media.PNG:
		hdr.pngEnd, err = pngEnd(path)
	}
	if err != nil {
		return "", err
	}
	return prepareInspected(ctx, t, gate, path, typ, hdr)
}

// trimPNG cuts whatever follows a PNG's IEND chunk (a newline added by a transfer, a tool's
// trailer, a second image): ffmpeg reads it as a next image, which would fail the render or be
// decoded unweighed. The upload cuts at the end inspectImage's layout check found (cutAfter); this
// walks the chunks again for the tests that trim a file by itself.
func trimPNG(path string) error {
	end, err := pngEnd(path)
	if err != nil {
		return err
	}
	return cutAfter(path, end)
}

// pngEnd walks the chunks of the PNG at path and returns the offset just past its IEND, 0 when it
// has none (ffprobe and salvagePNG deal with that).
func pngEnd(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w, ok := media.NewPNGWalker(f)
	if !ok {
		return 0, nil
	}
	for w.Next() {
	}
	return w.End(), w.Err()
}

// heifDecodedPictures walks the HEIC or AVIF at path (heifPicturesAt) and refuses what heifBudget
// refuses.
func heifDecodedPictures(path, typ string) (media.HEIFPictures, error) {
	pics, err := heifPicturesAt(path, typ)
	if err != nil {
		return pics, err
	}
	if err := heifBudget(pics, typ); err != nil {
		return media.HEIFPictures{}, err
	}
	return pics, nil
}

// heifToPNG is convertHEIF of the HEIC or AVIF at path, walked first as inspectImage walks it (when
// the server has heif-convert: without it, convertHEIF refuses the file as it is).
func heifToPNG(ctx context.Context, t ffmpeg.Tools, path, typ string) error {
	var pics media.HEIFPictures
	if t.HeifConvert != "" {
		var err error
		if pics, err = heifDecodedPictures(path, typ); err != nil {
			return err
		}
	}
	return convertHEIF(ctx, t, path, typ, pics)
}
