/* A narrow C face over ISA-L's streaming inflate (raw deflate), so the Rust side never
 * depends on the layout of `struct inflate_state`, which changes between ISA-L versions. */
#include <isa-l/igzip_lib.h>
#include <stdint.h>
#include <stdlib.h>

struct inflate_state *wharf_isal_new(void)
{
	struct inflate_state *s = malloc(sizeof *s);
	if (s) {
		isal_inflate_init(s);
		s->crc_flag = ISAL_DEFLATE;
	}
	return s;
}

void wharf_isal_free(struct inflate_state *s)
{
	free(s);
}

void wharf_isal_reset(struct inflate_state *s)
{
	isal_inflate_reset(s);
	s->crc_flag = ISAL_DEFLATE;
}

/* Inflates from `in` into `out`. Returns a negative ISA-L error code, 0 while the stream
 * goes on, or 1 once its final block has been decoded and flushed. `consumed` never counts
 * input past the end of the deflate stream that ISA-L read ahead and gave back. */
int wharf_isal_inflate(struct inflate_state *s, const uint8_t *in, uint32_t in_len, uint8_t *out,
		       uint32_t out_len, uint32_t *consumed, uint32_t *produced)
{
	s->next_in = (uint8_t *)in;
	s->avail_in = in_len;
	s->next_out = out;
	s->avail_out = out_len;
	int r = isal_inflate(s);
	*consumed = in_len - s->avail_in;
	*produced = out_len - s->avail_out;
	if (r < 0)
		return r;
	return s->block_state == ISAL_BLOCK_FINISH ? 1 : 0;
}

/* Once a stream has ended, ISA-L may hold whole bytes past its end in its bit buffer
 * (at most 8): copies them to `out`, forgets them and returns how many, or returns -1 if
 * input past the end sits anywhere else (its copy buffer), which would lose it. */
int wharf_isal_take_unused(struct inflate_state *s, uint8_t out[8])
{
	if (s->tmp_in_size != 0)
		return -1;
	int n = s->read_in_length / 8;
	uint64_t bits = s->read_in >> (s->read_in_length % 8);
	for (int i = 0; i < n; i++)
		out[i] = (uint8_t)(bits >> (8 * i));
	s->read_in = 0;
	s->read_in_length = 0;
	return n;
}
