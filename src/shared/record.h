/* record.h: the typed record stream that queue files, maildrop files and the per-message logs are made of
 * (one type byte, a 4-byte big-endian length, then the data): a bounded reader over a buffer or a file
 * descriptor that accepts only the types a format allows in each section, and a buffered writer. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define RECORD_HEADER 5U
#define RECORD_MAX (64U * 1024U)

/* A set of record types for the tables below, from their names: RECORD_TYPES(QUEUE_REC_ATTR, ...). */
#define RECORD_TYPES(...) ((const char[]) { __VA_ARGS__, '\0' })

/* One section of a format: any number of records of the types in allowed (NULL: none), then one record of
 * type end, which closes the section and opens the next. The end of the last section is the end of the
 * input: nothing may follow it. A last section whose end is '\0' has no end record and runs to the end of
 * the input, which must then fall on a record boundary (a log that is appended to). */
typedef struct RecordSection {
        const char *allowed;
        char end;
} RecordSection;

typedef struct RecordFormat {
        const RecordSection *sections;
        size_t n_sections;
        const char *empty;              /* types whose records carry no data (markers); NULL: none */
        uint32_t max_len;               /* most data bytes in one record; 0: RECORD_MAX */
        uint64_t head_max;              /* not 0: all sections but the last end within this many bytes */
} RecordFormat;

typedef struct Record {
        char type;
        uint32_t len;
        uint64_t offset;                /* of the type byte */
        size_t section;                 /* the section it is in; a section's end record counts to it */
} Record;

typedef struct RecordReader {
        const RecordFormat *format;
        const unsigned char *buf;       /* the input, or NULL: read fd */
        int fd;
        uint64_t size;
        uint64_t offset;                /* of the next record */
        size_t section;
        bool done;                      /* the end of the last section has been read */
        unsigned char *window;          /* fd: bytes read ahead, from window_off on */
        size_t window_len, window_size;
        uint64_t window_off;
} RecordReader;

/* An fd reader reads this much ahead at once (less at the end of its size), so that a small file is one
 * pread() and a large one a few. */
#define RECORD_READ_AHEAD (64U * 1024U)

/* A reader over len bytes of buf, which must outlive it. */
void record_reader_init(RecordReader *r, const RecordFormat *f, const void *buf, size_t len);
/* A reader over the first size bytes of fd (read with pread(), so the file offset is left alone, in
 * RECORD_READ_AHEAD pieces into a buffer of its own); -EBADMSG where the file turns out shorter. */
void record_reader_init_fd(RecordReader *r, const RecordFormat *f, int fd, uint64_t size);
void record_reader_done(RecordReader *r);

/* Goes on from a record boundary found before, e.g. the first record of the content. */
void record_reader_seek(RecordReader *r, uint64_t offset, size_t section);

/* The next record's header. 1: *ret is set; 0: the input ended where the format lets it end.
 * -EBADMSG: truncated, a record over max_len, a type not allowed where it stands, data in a marker, or
 * bytes after the end of the last section; -E2BIG: the sections before the last beyond head_max. */
int record_reader_next(RecordReader *r, Record *ret);

/* The data of a record that record_reader_next() returned. *ret stays valid until the next call of any
 * record_reader_*() on r. */
int record_reader_data(RecordReader *r, const Record *rec, const char **ret);
/* The data as a new string; -EBADMSG when it holds a NUL. */
int record_reader_string(RecordReader *r, const Record *rec, char **ret);

/* The content walk: calls cb with the data of each record up to the end of the current section, which is
 * read but not passed on. Empty records are skipped. Stops at and returns the first negative cb result. */
typedef int (*RecordDataFunc)(const char *data, size_t len, void *userdata);
int record_reader_foreach(RecordReader *r, RecordDataFunc cb, void *userdata);

/* A buffered writer over a file descriptor (the caller owns the fd). Large: allocate it. */
typedef struct RecordWriter {
        int fd;
        size_t len;
        uint64_t written;
        size_t last;                    /* bytes of the last flush */
        char buf[RECORD_MAX + RECORD_HEADER];
} RecordWriter;

void record_writer_init(RecordWriter *w, int fd);
/* -E2BIG: more than RECORD_MAX bytes of data. */
int record_writer_record(RecordWriter *w, char type, const void *data, size_t len);
int record_writer_recordf(RecordWriter *w, char type, const char *fmt, ...) _printf_(3, 4);
int record_writer_recordv(RecordWriter *w, char type, const char *fmt, va_list ap) _printf_(3, 0);
/* Data of any length, split into records of the given type as large as the buffer's room allows. */
int record_writer_split(RecordWriter *w, char type, const void *data, size_t len);
int record_writer_flush(RecordWriter *w);
/* Offset the next record will have. */
uint64_t record_writer_offset(const RecordWriter *w);
/* After the last flush: everything written, when one flush wrote it all (still in the buffer), else NULL. */
const void *record_writer_whole(const RecordWriter *w, size_t *ret_len);
