// Package media tells what an uploaded file is from its first bytes (SniffImage, SniffAudio) and
// reads what the service asks of a file's headers without decoding its pixels or samples: the
// pictures a HEIC or AVIF makes its decoder allocate (WalkHEIF); a JPEG's size, whether its frame
// header reads (told in Go's image/jpeg's words: HeaderError), colour storage, EXIF orientation and
// end, in one walk of its markers (ReadJPEGHeader; ReadJPEGFrame stops at the first scan); a PNG's
// chunk layout and header, in one walk of its chunks (PNGWalker, ReadPNGLayout); a WebP's and a
// TIFF's size (WebPSize, TIFFSize); and how long an audio file's header says it lasts, in one read
// of its head (ReadAudioHeader). It knows the formats' magic numbers and structures, not the
// service: it names types with its constants (JPEG … Matroska), returns its own errors
// (ErrHEIFDamaged, ErrHEIFCodec, ErrPNG…, HeaderError …) for the service to turn into messages,
// and reads only the bytes, io.Reader or io.ReaderAt it is given, within bounds whatever they
// claim.
package media
