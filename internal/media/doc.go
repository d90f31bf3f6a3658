// Package media tells what an uploaded file is from its first bytes (SniffImage, SniffAudio) and
// reads what the service asks of a file's headers without decoding its pixels or samples: the
// pictures a HEIC or AVIF makes its decoder allocate (WalkHEIF). It knows the formats' magic
// numbers and structures, not the service: it names types with its constants (JPEG … Matroska),
// returns its own errors (ErrHEIFDamaged, ErrHEIFCodec) for the service to turn into messages,
// and reads only the bytes or the io.ReaderAt it is given, within bounds whatever they claim.
package media
