/*
 * adapter.c: the table of engines.
 */
#include <string.h>

#include "adapters/adapter.h"

extern const struct adapter postgres_adapter;
extern const struct adapter redis_adapter;

static const struct adapter *const adapters[] = {
	&postgres_adapter,
	&redis_adapter,
};

const struct adapter *adapter_find(const char *name)
{
	for (size_t i = 0; i < sizeof(adapters) / sizeof(*adapters); i++)
		if (strcmp(adapters[i]->name, name) == 0)
			return adapters[i];
	return NULL;
}
