import FlareContracts
import Foundation
import Hummingbird

/// `POST /api/templates/{template}/promote`.
struct PromoteRequest: Codable {
    var version: String
}

/// Template, version, bundle and build-log routes: adapters over ``TemplateService`` and
/// ``BuildService``.
extension ControlPlaneAPI {
    func addTemplateRoutes(to group: RouterGroup<UserRequestContext>) {
        group.get("/templates") { request, context -> EditedResponse<[TemplateInfo]> in
            let paging = try ListPaging(request)
            let page = try await templates.list(context.caller, limit: paging.limit, after: paging.cursor)
            return paging.response(page.items, next: page.next)
        }

        group.post("/templates") { request, context -> EditedResponse<TemplateInfo> in
            let body = try await request.decodeJSON(TemplateCreateRequest.self, context: context)
            return EditedResponse(status: .created, response: try await templates.create(context.caller, body))
        }

        group.get("/templates/{template}") { _, context in
            try await templates.get(context.caller, try context.parameters.require("template"))
        }

        group.post("/templates/{template}/versions") { request, context -> EditedResponse<TemplateVersionInfo> in
            let body = try await request.decodeJSON(JSONValue.self, context: context)
            let version = try await templates.createVersion(context.caller, try context.parameters.require("template"), body)
            return EditedResponse(status: .created, response: version)
        }

        group.post("/templates/{template}/promote") { request, context -> TemplateInfo in
            let body = try await request.decodeJSON(PromoteRequest.self, context: context)
            return try await templates.promote(context.caller, try context.parameters.require("template"),
                                               version: body.version)
        }

        // The build's output; with `?follow=true`, streamed until the build ends.
        group.get("/templates/{template}/versions/{version}/build-log") { request, context -> Response in
            let follow = request.uri.queryParameters["follow"].map { $0 == "true" || $0 == "1" } ?? false
            let log = try await templateBuilds.log(context.caller, template: try context.parameters.require("template"),
                                                   version: try context.parameters.require("version"), follow: follow)
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init { writer in
                for try await chunk in log { try await writer.write(chunk) }
                try await writer.finish(nil)
            })
        }

        // The files the manifest's `files` name, as a tar (zstd allowed); see BuildService.
        group.put("/templates/{template}/versions/{version}/bundle") { request, context -> TemplateVersionInfo in
            try await templateBuilds.uploadBundle(context.caller, template: try context.parameters.require("template"),
                                                  version: try context.parameters.require("version"), request.body)
        }
    }
}
