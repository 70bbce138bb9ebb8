/*
 * test_map_err.c - the one error table: every row present and consistent,
 * and the PCP -> NAT-PMP / UPnP translations of spec/iwf.md §2 and §4.3.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "map_err.h"
#include "pcp_wire.h"

static void
test_every_row_present(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < MAP_ERR_COUNT; i++) {
		const struct map_err_row *row = map_err_row((enum map_err)i);

		assert_int_equal(row->err, i);
		assert_non_null(row->name);
		assert_non_null(row->text);
		/* every UPnP code used has a name for the SOAP fault (U-13) */
		if (row->upnp_v1 != 0)
			assert_non_null(map_err_upnp_name(row->upnp_v1));
		if (row->upnp_v2 != 0)
			assert_non_null(map_err_upnp_name(row->upnp_v2));
		/* RFC 6886 §3.5: result codes 0..5 only */
		assert_true(row->natpmp_result <= 5);
		/* a PCP error carries a lifetime class, success none (§7.4) */
		if (row->pcp_result == PCP_SUCCESS)
			assert_int_equal(row->pcp_life, MAP_LIFE_NONE);
		else
			assert_int_not_equal(row->pcp_life, MAP_LIFE_NONE);
	}
	/* out of range falls back to INTERNAL rather than reading past */
	assert_int_equal(map_err_row(MAP_ERR_COUNT)->err, MAP_ERR_INTERNAL);
}

/* spec/iwf.md §2 "Result translation (PCP -> NAT-PMP)" */
static void
test_pcp_to_natpmp(void **state)
{
	static const struct { unsigned int pcp, natpmp; } rows[] = {
		{ PCP_SUCCESS, 0 },
		{ PCP_NOT_AUTHORIZED, 2 }, { PCP_UNSUPP_PROTOCOL, 2 },
		{ PCP_NO_RESOURCES, 4 }, { PCP_USER_EX_QUOTA, 4 },
		{ PCP_CANNOT_PROVIDE_EXTERNAL, 4 },
		{ PCP_NETWORK_FAILURE, 3 }, { PCP_ADDRESS_MISMATCH, 3 },
		{ PCP_UNSUPP_VERSION, 3 }, { PCP_MALFORMED_REQUEST, 3 },
		{ PCP_UNSUPP_OPCODE, 3 }, { PCP_UNSUPP_OPTION, 3 },
		{ PCP_MALFORMED_OPTION, 3 }, { PCP_EXCESSIVE_REMOTE_PEERS, 3 },
		{ 200, 3 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_int_equal(map_err_row(map_err_from_pcp(rows[i].pcp))
		    ->natpmp_result, rows[i].natpmp);
}

/* RFC 6970 §4.3 as digested in spec/iwf.md §4.3 */
static void
test_pcp_to_upnp(void **state)
{
	static const struct { unsigned int pcp, v1, v2; } rows[] = {
		{ PCP_NOT_AUTHORIZED, 718, 606 },
		{ PCP_NO_RESOURCES, 501, 728 }, { PCP_USER_EX_QUOTA, 501, 728 },
		{ PCP_CANNOT_PROVIDE_EXTERNAL, 718, 718 },
		{ PCP_UNSUPP_VERSION, 501, 501 }, { PCP_MALFORMED_REQUEST, 501, 501 },
		{ PCP_UNSUPP_OPCODE, 501, 501 }, { PCP_UNSUPP_OPTION, 501, 501 },
		{ PCP_MALFORMED_OPTION, 501, 501 }, { PCP_NETWORK_FAILURE, 501, 501 },
		{ PCP_UNSUPP_PROTOCOL, 501, 501 }, { PCP_ADDRESS_MISMATCH, 501, 501 },
		{ PCP_EXCESSIVE_REMOTE_PEERS, 501, 501 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct map_err_row *row =
		    map_err_row(map_err_from_pcp(rows[i].pcp));

		assert_int_equal(row->upnp_v1, rows[i].v1);
		assert_int_equal(row->upnp_v2, rows[i].v2);
	}
}

static void
test_lifetimes(void **state)
{
	(void)state;
	assert_int_equal(map_err_pcp_lifetime(MAP_OK), 0);
	assert_int_equal(map_err_pcp_lifetime(MAP_ERR_NETWORK_FAILURE), 30);
	assert_int_equal(map_err_pcp_lifetime(MAP_ERR_QUOTA), 30);
	assert_int_equal(map_err_pcp_lifetime(MAP_ERR_NOT_AUTHORIZED), 1800);
	assert_string_equal(map_err_upnp_name(718), "ConflictInMappingEntry");
	assert_null(map_err_upnp_name(999));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_row_present),
		cmocka_unit_test(test_pcp_to_natpmp),
		cmocka_unit_test(test_pcp_to_upnp),
		cmocka_unit_test(test_lifetimes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
