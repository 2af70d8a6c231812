/* Inline-encryption capabilities: intersect, superset, expand, parse. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ibcrypt/caps.h"

/* Capabilities are read on the data path while a table resume may expand
 * them, so every word is loaded and stored atomically (relaxed: a reader
 * that sees a stale word merely falls back to software). */
#define LOAD(p) __atomic_load_n ((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n ((p), (v), __ATOMIC_RELAXED)

void
ibc_caps_init_all (struct ibc_caps *caps)
{
  for (unsigned m = 0; m < IBC_MODE_MAX; m++)
    caps->modes[m] = m == IBC_MODE_INVALID ? 0 : UINT32_MAX;
  caps->max_dun_bytes = IBC_MAX_IV_SIZE;
  caps->key_types = IBC_KEY_TYPES_ALL;
}

void
ibc_caps_init_none (struct ibc_caps *caps)
{
  memset (caps, 0, sizeof *caps);
}

void
ibc_caps_intersect (struct ibc_caps *parent, const struct ibc_caps *child)
{
  if (child == NULL) {
    ibc_caps_init_none (parent);
    return;
  }
  for (unsigned m = 0; m < IBC_MODE_MAX; m++)
    parent->modes[m] &= LOAD (&child->modes[m]);
  if (LOAD (&child->max_dun_bytes) < parent->max_dun_bytes)
    parent->max_dun_bytes = LOAD (&child->max_dun_bytes);
  parent->key_types &= LOAD (&child->key_types);
}

bool
ibc_caps_has (const struct ibc_caps *target, const struct ibc_caps *reference)
{
  if (reference == NULL)
    return true;
  if (target == NULL)
    return false;
  for (unsigned m = 0; m < IBC_MODE_MAX; m++) {
    uint32_t ref = LOAD (&reference->modes[m]);
    if ((LOAD (&target->modes[m]) & ref) != ref)
      return false;
  }
  if (LOAD (&target->max_dun_bytes) < LOAD (&reference->max_dun_bytes))
    return false;
  uint32_t kt = LOAD (&reference->key_types);
  return (LOAD (&target->key_types) & kt) == kt;
}

void
ibc_caps_update (struct ibc_caps *dst, const struct ibc_caps *src)
{
  for (unsigned m = 0; m < IBC_MODE_MAX; m++)
    STORE (&dst->modes[m], src->modes[m]);
  STORE (&dst->max_dun_bytes, src->max_dun_bytes);
  STORE (&dst->key_types, src->key_types);
}

void
ibc_caps_snapshot (const struct ibc_caps *src, struct ibc_caps *dst)
{
  for (unsigned m = 0; m < IBC_MODE_MAX; m++)
    dst->modes[m] = LOAD (&src->modes[m]);
  dst->max_dun_bytes = LOAD (&src->max_dun_bytes);
  dst->key_types = LOAD (&src->key_types);
}

bool
ibc_caps_supports (const struct ibc_caps *caps,
                   const struct ibc_crypto_config *cfg)
{
  if (caps == NULL || (unsigned) cfg->mode >= IBC_MODE_MAX)
    return false;
  if ((LOAD (&caps->modes[cfg->mode]) & cfg->data_unit_size) == 0)
    return false;
  if (LOAD (&caps->max_dun_bytes) < cfg->dun_bytes)
    return false;
  return (LOAD (&caps->key_types) & (uint32_t) cfg->key_type) != 0;
}

bool
ibc_caps_empty (const struct ibc_caps *caps)
{
  for (unsigned m = 0; m < IBC_MODE_MAX; m++)
    if (LOAD (&caps->modes[m]) != 0)
      return false;
  return true;
}

void
ibc_caps_restrict_alignment (struct ibc_caps *caps, uint64_t align)
{
  uint32_t mask;

  if (align == 0)
    return;
  /* Data unit sizes 2^i that divide align: bits 0 .. ctz(align). */
  unsigned tz = (unsigned) __builtin_ctzll (align);
  mask = tz >= 31 ? UINT32_MAX : (uint32_t) ((2u << tz) - 1);
  for (unsigned m = 0; m < IBC_MODE_MAX; m++)
    caps->modes[m] &= mask;
}

/* Short aliases accepted in capability strings. */
static const char *const mode_aliases[IBC_MODE_MAX] = {
  [IBC_MODE_AES_256_XTS] = "aes-xts",
  [IBC_MODE_AES_128_CBC_ESSIV] = "aes-cbc-essiv",
  [IBC_MODE_ADIANTUM] = "adiantum",
  [IBC_MODE_SM4_XTS] = "sm4-xts",
};

/* Match a mode name at s that is followed by ':'.  The dm name of Adiantum
 * contains a comma, so names are matched whole rather than split on ','. */
static int
match_mode (const char *s, enum ibc_mode *ret_mode, size_t *ret_len)
{
  for (unsigned m = IBC_MODE_INVALID + 1; m < IBC_MODE_MAX; m++) {
    const struct ibc_mode_info *info = ibc_mode_info ((enum ibc_mode) m);
    const char *names[] = { info->cipher_name, info->name, mode_aliases[m] };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
      size_t n = strlen (names[i]);
      if (strncasecmp (s, names[i], n) == 0 && s[n] == ':') {
        *ret_mode = (enum ibc_mode) m;
        *ret_len = n;
        return 0;
      }
    }
  }
  return -EINVAL;
}

int
ibc_caps_parse_modes (const char *s, struct ibc_caps *caps)
{
  uint32_t modes[IBC_MODE_MAX] = { 0 };

  if (s == NULL)
    return -EINVAL;
  while (*s) {
    enum ibc_mode mode;
    size_t n;

    if (match_mode (s, &mode, &n) < 0)
      return -EINVAL;
    s += n + 1;
    for (;;) {
      char *end;
      unsigned long dus;

      if (*s < '0' || *s > '9')
        return -EINVAL;
      errno = 0;
      dus = strtoul (s, &end, 10);
      if (errno != 0 || !ibc_is_power_of_2 (dus) || dus > (1ul << 31))
        return -EINVAL;
      modes[mode] |= (uint32_t) dus;
      s = end;
      if (*s != '+')
        break;
      s++;
    }
    if (*s == '\0')
      break;
    if (*s != ',' && *s != '/')
      return -EINVAL;
    s++;
    if (*s == '\0')
      return -EINVAL;
  }
  memcpy (caps->modes, modes, sizeof modes);
  return 0;
}

/* Append "<prefix><s>" or "<prefix><v>" to buf like snprintf, tracking the
 * would-be length. */
static void
append (char *buf, size_t size, size_t *len, const char *prefix, const char *s,
        unsigned v)
{
  int n;

  if (s)
    n = snprintf (*len < size ? buf + *len : NULL,
                  *len < size ? size - *len : 0, "%s%s", prefix, s);
  else
    n = snprintf (*len < size ? buf + *len : NULL,
                  *len < size ? size - *len : 0, "%s%u", prefix, v);
  if (n > 0)
    *len += (size_t) n;
}

int
ibc_caps_format_modes (const struct ibc_caps *caps, char *buf, size_t size)
{
  size_t len = 0;

  if (size > 0)
    buf[0] = '\0';
  for (unsigned m = IBC_MODE_INVALID + 1; m < IBC_MODE_MAX; m++) {
    uint32_t bits = LOAD (&caps->modes[m]);
    const char *sep = ":";

    if (bits == 0)
      continue;
    /* Sysfs names: they contain no ',' so the output splits cleanly. */
    append (buf, size, &len, len ? "," : "",
            ibc_mode_info ((enum ibc_mode) m)->name, 0);
    for (unsigned i = 0; i < 32; i++) {
      if (bits & (1u << i)) {
        append (buf, size, &len, sep, NULL, 1u << i);
        sep = "+";
      }
    }
  }
  if (len >= size)
    return -ENOSPC;
  return (int) len;
}
